"""Registers the STING search endpoint (plugins/sting_airflow/search_api.py) with Airflow's API
server at /sting."""

from airflow.plugins_manager import AirflowPlugin

from sting_airflow.search_api import create_app


class StingSearchPlugin(AirflowPlugin):
    name = "sting_search"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/sting", "name": "STING search"}]
