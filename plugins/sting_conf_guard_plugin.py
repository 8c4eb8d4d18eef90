"""Registers the trigger guard (plugins/sting_airflow/conf_guard.py) with Airflow's API server:
unknown conf keys are refused with HTTP 400 before a run is created."""

from airflow.plugins_manager import AirflowPlugin

from sting_airflow.conf_guard import ConfGuardMiddleware


class StingConfGuardPlugin(AirflowPlugin):
    name = "sting_conf_guard"
    fastapi_root_middlewares = [{"middleware": ConfGuardMiddleware, "name": "STING conf guard"}]
