# The Airflow image of the production stack (docker-compose.yaml): the official Airflow 3.3.2
# image plus this project's pinned requirements and code.
FROM apache/airflow:3.3.2-python3.11
# pgBackRest (the backup jobs run it as the repository host), redis-tools (redis-cli --rdb,
# redis-check-rdb, redis-server for drills), PostgreSQL 16 server binaries (scratch clusters of the
# restore drills)
USER root
RUN apt-get update && apt-get install -y --no-install-recommends pgbackrest redis-tools redis-server \
      postgresql-16 stunnel4 && rm -rf /var/lib/apt/lists/*
USER airflow
COPY requirements.txt constraints.txt /opt/sting/
RUN pip install --no-cache-dir -r /opt/sting/requirements.txt -c /opt/sting/constraints.txt \
      apache-airflow-providers-celery
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 include /opt/airflow/include
COPY --chown=airflow:0 sql /opt/airflow/sql
ENV PYTHONPATH=/opt/airflow:/opt/airflow/plugins
