"""Comb templates: a comb definition without a name (and with CHANGE_ME placeholders), kept in
`honey_combs` with is_template. System templates (include/combs/templates/*.yaml) are public;
users publish their own, public or private. Creating a comb from a template deep-merges the
user's values over it, validates the result like any comb file (so a placeholder left unset is an
error that names it), writes `<combs dir>/<name>.yaml` (the comb's DAG appears with it), registers
the comb and counts the template's use (usage_count).

    python -m include.honeycomb.templates list
    python -m include.honeycomb.templates create TEMPLATE NAME --set configuration.connection.parameters.stream=x ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml
from psycopg.types.json import Jsonb

from include.honeycomb.catalog import register_comb, split_definition
from include.honeycomb.config import CombConfigError, combs_dir, parse_comb

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "combs" / "templates"
PLACEHOLDER = "CHANGE_ME"


class TemplateError(ValueError):
    pass


def publish_template(conn, name: str, raw: dict, *, is_public: bool = False, owner_id: str | None = None) -> str:
    """Upsert a template (by owner + name). Returns its id."""
    if raw.get("type") not in ("database", "api", "file_system", "stream"):
        raise TemplateError(f"template '{name}': type must be database, api, file_system or stream")
    conf, scrubbing = split_definition(raw)
    row = conn.execute(
        """
        INSERT INTO honey_combs (name, description, type, subtype, configuration, scrubbing_config,
                                 is_template, is_public, owner_id)
        VALUES (%s, %s, %s, %s, %s, %s, TRUE, %s, %s)
        ON CONFLICT (name, COALESCE(owner_id, '00000000-0000-0000-0000-000000000000'::uuid)) WHERE is_template
        DO UPDATE SET description = EXCLUDED.description, type = EXCLUDED.type, subtype = EXCLUDED.subtype,
                      configuration = EXCLUDED.configuration, scrubbing_config = EXCLUDED.scrubbing_config,
                      is_public = EXCLUDED.is_public, updated_at = NOW()
        RETURNING id
        """,
        (name, raw.get("description"), raw["type"], raw["subtype"], Jsonb(conf),
         Jsonb(scrubbing) if scrubbing is not None else None, is_public, owner_id),
    ).fetchone()
    return str(row["id"])


def seed_system_templates(conn) -> list[str]:
    names = []
    for p in sorted(TEMPLATES_DIR.glob("*.yaml")):
        publish_template(conn, p.stem, yaml.safe_load(p.read_text()), is_public=True)
        names.append(p.stem)
    return names


def list_templates(conn, user_id: str | None = None) -> list[dict]:
    """Templates this user may use: public ones and their own."""
    return conn.execute(
        """SELECT id::text, name, description, type, subtype, is_public, owner_id::text, usage_count
             FROM honey_combs WHERE is_template AND (is_public OR owner_id = %s) ORDER BY name""",
        (user_id,)).fetchall()


def deep_merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = deep_merge(base.get(k), v) if k in base else v
        return out
    return over


def _placeholders(value: Any, path: str = "") -> list[str]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _placeholders(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _placeholders(v, f"{path}[{i}]")]
    return [path] if isinstance(value, str) and PLACEHOLDER in value else []


def create_from_template(conn, template: str, name: str, values: dict | None = None, *,
                         user_id: str | None = None, directory: Path | None = None) -> Path:
    """Make comb `name` from `template` with `values` merged over it; returns the new comb file."""
    row = conn.execute(
        """SELECT id, name, description, type, subtype, configuration, scrubbing_config FROM honey_combs
            WHERE is_template AND name = %s AND (is_public OR owner_id = %s)
            ORDER BY (owner_id IS NULL) LIMIT 1""", (template, user_id)).fetchone()
    if not row:
        raise TemplateError(f"no template '{template}' available to this user")
    conf = dict(row["configuration"])
    execution_type = conf.pop("execution_type", "continuous_flow")
    target = conf.pop("target", None)
    if row["scrubbing_config"] is not None:
        conf["scrubbing"] = row["scrubbing_config"]
    raw = {"name": name, "description": row["description"], "type": row["type"], "subtype": row["subtype"],
           "execution_type": execution_type, "configuration": conf}
    if target:
        raw["target"] = target
    raw = deep_merge(raw, values or {})
    raw["name"] = name
    unset = _placeholders(raw)
    if unset:
        raise TemplateError(f"comb '{name}' from template '{template}': set {', '.join(unset)} "
                            f"(still '{PLACEHOLDER}')")
    try:
        comb = parse_comb(raw, f"template {template}")
    except CombConfigError as e:
        raise TemplateError(str(e)) from None
    path = (directory or combs_dir()) / f"{name}.yaml"
    if path.exists():
        raise TemplateError(f"comb '{name}' already exists ({path})")
    register_comb(conn, comb, raw)
    conn.execute("UPDATE honey_combs SET usage_count = usage_count + 1 WHERE id = %s", (row["id"],))
    path.write_text(f"# Created from template '{template}'.\n" + yaml.safe_dump(raw, sort_keys=False))
    return path


def _parse_set(items: list[str]) -> dict:
    out: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise TemplateError(f"--set {item}: expected dotted.key=value")
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = yaml.safe_load(value)
    return out


def main(argv: list[str]) -> int:
    from include.db import connect

    ap = argparse.ArgumentParser(prog="python -m include.honeycomb.templates")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    c = sub.add_parser("create")
    c.add_argument("template")
    c.add_argument("name")
    c.add_argument("--set", action="append", default=[], help="dotted.key=value (YAML value)")
    a = ap.parse_args(argv)
    try:
        with connect() as conn:
            if a.cmd == "list":
                for t in list_templates(conn):
                    print(json.dumps(t))
            else:
                print(create_from_template(conn, a.template, a.name, _parse_set(a.set)))
    except TemplateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
