-- docker-compose only: the Airflow metadata database beside the application database `sting`.
CREATE DATABASE airflow;
