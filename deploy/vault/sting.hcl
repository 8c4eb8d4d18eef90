# OpenBao server of the production compose file: persistent (integrated raft storage on the
# vault-data volume), sealed at every start until unsealed (see deploy/vault/README.md).
# The listener is reachable only on the compose network (no port is published); put TLS on it
# (tls_cert_file / tls_key_file) when Vault is reached across hosts.
ui            = false
disable_mlock = true
api_addr      = "http://vault:8200"
cluster_addr  = "http://vault:8201"

storage "raft" {
  path    = "/openbao/data"
  node_id = "sting-vault-1"
}

listener "tcp" {
  address     = "0.0.0.0:8200"
  tls_disable = true
}
