# Least privilege for Airflow (scheduler, workers, API server, dag processor, triggerer): read
# the secrets the pipelines use, nothing else. No write, no list, no sys/, no other mounts.
path "secret/data/honey_combs/*" {
  capabilities = ["read"]
}
path "secret/data/sting/scrubbing" {
  capabilities = ["read"]
}
path "secret/data/sting/tokenization" {
  capabilities = ["read"]
}
path "secret/data/airflow/connections/*" {
  capabilities = ["read"]
}
path "secret/data/airflow/variables/*" {
  capabilities = ["read"]
}
# threat-intelligence feeds (include/feeds/*.yaml name their vault_path here)
path "secret/data/threat_feeds/*" {
  capabilities = ["read"]
}
