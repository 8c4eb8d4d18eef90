"""Direct Vault (OpenBao) access over hvac, for the stack's seeding, tests and benchmarks.
Airflow tasks read secrets through `sting_airflow.hooks.HoneyCombVaultHook` instead."""

from __future__ import annotations

import hvac

from include.settings import get_settings


def client() -> hvac.Client:
    s = get_settings()
    return hvac.Client(url=s.vault_addr, token=s.vault_token, timeout=10)


def read_secret(path: str) -> dict:
    path = path.strip("/")
    try:
        resp = client().secrets.kv.v2.read_secret_version(path=path, mount_point="secret",
                                                          raise_on_deleted_version=True)
    except hvac.exceptions.InvalidPath:
        raise LookupError(f"no secret at Vault path '{path}' (KV v2, mount 'secret')") from None
    return resp["data"]["data"]


def write_secret(path: str, data: dict) -> None:
    client().secrets.kv.v2.create_or_update_secret(path=path.strip("/"), secret=data, mount_point="secret")

