"""Airflow operators and hooks for STING: thin wrappers over the `include` library."""
