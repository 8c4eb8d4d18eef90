"""Weekly model training (the seed's `weekly_ml_training`): window features of honeypot events, an
unsupervised anomaly detector and a supervised threat classifier, versioned models with a
promotion gate, rollback and a drift report. Plain Python: no Airflow import here."""
