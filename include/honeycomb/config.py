"""Typed honey comb definitions, following the seed's configuration schema.

A comb file (YAML) is validated here before anything runs; a bad one is rejected with a message
that names the comb, the file and the field. This module is light (pydantic, yaml): DAG files
import it at parse time.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import re
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from include.honeycomb.source_params import PostgresParameters
from include.settings import REPO_ROOT

COMBS_DIR = REPO_ROOT / "include" / "combs"


def combs_dir() -> Path:
    """Where comb definitions live: include/combs, or $STING_COMBS_DIR."""
    return Path(os.environ.get("STING_COMBS_DIR") or COMBS_DIR)

_ENV_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
}


class CombConfigError(ValueError):
    """A comb definition is invalid. The message names the comb, its source and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Connection(_Strict):
    vault_path: str | None = Field(default=None, min_length=1,
                                   description="KV v2 path of the source credentials (none for open sources)")
    parameters: dict[str, Any] = Field(default_factory=dict)

    @field_validator("vault_path")
    @classmethod
    def _strip_slashes(cls, v: str | None) -> str | None:
        return v.strip("/") if v else v


def _parse_duration(v: Any) -> timedelta:
    if isinstance(v, timedelta):
        return v
    if isinstance(v, (int, float)):
        return timedelta(seconds=v)
    m = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", str(v))
    if not m:
        raise ValueError("expected a duration like '30m', '1h', '2d' or a number of seconds")
    n, unit = int(m.group(1)), m.group(2)
    return timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: n})


class Extraction(_Strict):
    mode: Literal["incremental", "snapshot"]
    schedule: str | None = Field(default=None, description="cron expression or @preset; null = manual only")
    table: str | None = Field(default=None, description="schema.table to extract")
    query_template: str | None = Field(
        default=None,
        description="SELECT with ${table}, ${last_sync}, ${window_start}, ${window_end} placeholders",
    )
    primary_key: list[str] = Field(default_factory=list, description="required for database combs")
    incremental_column: str | None = Field(
        default=None, description="database: the window column; api: the cursor field of each record")
    lookback: Annotated[timedelta, Field(default=timedelta(hours=1))] = timedelta(hours=1)
    batch_size: int = Field(default=100_000, ge=1_000, le=5_000_000)
    null_cursor: Literal["deliver", "fail"] = Field(
        default="deliver", description="rows whose incremental column is NULL: deliver them in the comb's "
        "null-cursor object (rewritten by every run), or fail the run while any exists")

    @field_validator("lookback", mode="before")
    @classmethod
    def _lookback(cls, v: Any) -> timedelta:
        return _parse_duration(v)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str | None) -> str | None:
        if v is None:
            return None
        v = _PRESETS.get(v.strip(), v.strip())
        from croniter import croniter

        if not croniter.is_valid(v):
            raise ValueError(f"'{v}' is not a valid cron expression")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Extraction:
        if self.query_template and "${table}" in self.query_template and not self.table:
            raise ValueError("query_template uses ${table} but 'table' is not set")
        return self

    def check_for_database(self) -> None:
        """Database combs read windows of a table: they need more than the other types."""
        if not self.table and not self.query_template:
            raise ValueError("extraction: one of 'table' or 'query_template' is required")
        if not self.primary_key:
            raise ValueError("extraction: 'primary_key' is required for a database comb")
        if self.mode == "incremental":
            if not self.incremental_column:
                raise ValueError("extraction: incremental mode needs 'incremental_column'")
            if not self.schedule:
                raise ValueError("extraction: incremental mode needs a 'schedule' (its intervals are the windows)")


Action = Literal["hash", "remove", "mask", "redact", "tokenize", "generalize", "anonymize_ip"]
# Actions the database comb runs inside the source's SELECT (raw values never leave the source);
# the others run on the Arrow batches in the worker (values pass through its memory, unpersisted).
# `hash` is not among them: its key stays in the worker (never in SQL or a source's session).
PUSHDOWN_ACTIONS = frozenset({"remove", "mask", "redact", "secret"})


class ScrubRule(_Strict):
    field: str | None = None
    pattern: str | None = None
    action: Action

    @model_validator(mode="after")
    def _one_target(self) -> ScrubRule:
        if bool(self.field) == bool(self.pattern):
            raise ValueError("a rule needs exactly one of 'field' (a column) or 'pattern' (a glob)")
        return self

    def matches(self, column: str) -> bool:
        if self.field:
            return column == self.field
        return fnmatch.fnmatchcase(column, self.pattern or "")


class Scrubbing(_Strict):
    enabled: bool = True
    profile_id: str | None = None
    custom_rules: list[ScrubRule] = Field(default_factory=list)
    salt_vault_path: str = Field(default="sting/scrubbing",
                                 description="KV v2 path holding 'hash_key' (HMAC key) and 'hash_key_version'")
    text_fields: list[str] = Field(default_factory=list,
                                   description="free-text columns (names or globs) scrubbed with Presidio")
    text_allow_list: list[str] = Field(default_factory=list,
                                       description="terms never flagged in free text (product, team names)")
    text_entities: list[str] | None = Field(default=None, description="analyse free text for these entities only "
                                            "(default: all of the profile's); none of PERSON/LOCATION skips the NER")

    @field_validator("profile_id")
    @classmethod
    def _profile(cls, v: str | None) -> str | None:
        from include.privacy.profiles import SYSTEM_PROFILES

        if v is None:
            return None
        name = v.lower().removesuffix("_compliant")  # the seed's "gdpr_compliant" means the gdpr profile
        if name not in SYSTEM_PROFILES:
            raise ValueError(f"unknown profile '{v}' (known: {', '.join(SYSTEM_PROFILES)})")
        return name

    def decisions(self, columns: list[str]) -> dict[str, tuple[str, str]]:
        """Column -> (action, entity): custom rules first (top to bottom), then the profile by the
        column's entity; keys holding secrets are always redacted (action 'secret'), even when
        scrubbing is disabled."""
        from include.privacy.profiles import decide

        rules = [r.model_dump(exclude_none=True) for r in self.custom_rules]
        out = {}
        for col in columns:
            d = decide(col, self.profile_id, rules)
            if d is None and any(fnmatch.fnmatchcase(col, g) for g in self.text_fields):
                d = ("text", "FREE_TEXT")
            if d and (self.enabled or d[0] == "secret"):
                out[col] = d
        return out

    def plan(self, columns: list[str]) -> dict[str, str]:
        """Column -> action."""
        return {c: a for c, (a, _) in self.decisions(columns).items()}

    @property
    def may_tokenize(self) -> bool:
        """A profile or a rule may tokenize: the run needs the token vault."""
        return self.enabled and (bool(self.profile_id) or any(r.action == "tokenize" for r in self.custom_rules))

    def scrubber(self, salt: str | None, token_vault=None):
        """The privacy engine for these settings (the same for every comb type). Disabled
        scrubbing still redacts secrets: the Scrubber always does."""
        from include.privacy.engine import Scrubber

        if not self.enabled:
            return Scrubber(salt=salt)
        return Scrubber(profile=self.profile_id, custom_rules=[r.model_dump(exclude_none=True) for r in self.custom_rules],
                        salt=salt, token_vault=token_vault, text_fields=list(self.text_fields),
                        text_allow_list=list(self.text_allow_list), text_entities=self.text_entities)


class Output(_Strict):
    format: Literal["parquet"] = "parquet"
    compression: Literal["snappy", "zstd", "gzip", "none"] = "snappy"
    partitioning: list[Literal["year", "month"]] = Field(default_factory=lambda: ["year", "month"])
    bucket: str | None = Field(default=None, description="defaults to the stack's comb output bucket")
    prefix: str | None = Field(default=None, description="defaults to the comb name")
    embed_text_fields: list[str] = Field(
        default_factory=list,
        description="text columns (after scrubbing) that the document pipeline chunks and embeds into the jar",
    )


class Configuration(_Strict):
    connection: Connection
    extraction: Extraction
    scrubbing: Scrubbing = Field(default_factory=Scrubbing)
    output: Output = Field(default_factory=Output)


class Target(_Strict):
    honey_jar: str | None = Field(default=None, description="jar name for continuous_flow")
    jar_type: Literal["public", "private", "premium", "marketplace"] = "private"


class CombDefinition(_Strict):
    name: str
    description: str | None = None
    type: Literal["database", "api", "file_system", "stream"]
    subtype: str
    execution_type: Literal["continuous_flow", "snapshot_generation"] = "continuous_flow"
    target: Target = Field(default_factory=Target)
    configuration: Configuration
    tags: list[str] = Field(default_factory=list)
    start_date: date = Field(default=date(2026, 1, 1), description="first schedulable interval")
    classification: Literal["public", "internal", "confidential", "restricted"] = Field(
        default="confidential", description="the seed's data class of what the comb delivers: on every output "
                                            "object (metadata data-classification) and in its lineage")
    pause_after_failures: int = Field(default=3, ge=0, le=1000,
                                      description="pause the comb's DAG after this many failed runs in a row "
                                                  "(0: never); operators are notified")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("use lower-case letters, digits and '_', starting with a letter (max 63)")
        return v

    @model_validator(mode="after")
    def _supported(self) -> CombDefinition:
        from include.honeycomb.source_params import SUBTYPES, parameters_model

        model = parameters_model(self.type, self.subtype)
        if model is None:
            known = ", ".join(f"{t}/{s}" for t, s in SUBTYPES)
            raise ValueError(f"type '{self.type}' / subtype '{self.subtype}' is not available (available: {known})")
        model.model_validate(self.configuration.connection.parameters)
        ex = self.configuration.extraction
        if self.type == "database":
            ex.check_for_database()
            if not self.configuration.connection.vault_path:
                raise ValueError("configuration.connection.vault_path: required for a database comb (its credentials)")
        elif self.type == "file_system":
            params = self.configuration.connection.parameters
            need = "path" if self.subtype == "local" else "bucket"
            if not params.get(need):
                raise ValueError(f"configuration.connection.parameters.{need}: required for file_system/{self.subtype}")
        elif self.type == "api" and ex.mode == "incremental" and not ex.incremental_column:
            raise ValueError("extraction: an incremental api comb needs 'incremental_column' (the cursor field)")
        plan = self.configuration.scrubbing
        for pk, action in plan.plan(ex.primary_key).items():
            if action not in ("hash", "tokenize"):
                raise ValueError(
                    f"primary key column '{pk}' cannot be '{action}'-scrubbed: "
                    "dedupe needs it (use 'hash' or 'tokenize', which are stable)"
                )
        if ex.incremental_column and plan.plan([ex.incremental_column]):
            raise ValueError(f"incremental column '{ex.incremental_column}' cannot be scrubbed")
        removed = [f for f, a in plan.plan(self.configuration.output.embed_text_fields).items() if a == "remove"]
        if removed:
            raise ValueError(f"embed_text_fields {removed} are removed by scrubbing: nothing would be left to embed")
        return self

    @property
    def dag_id(self) -> str:
        return f"honey_comb__{self.name}"

    @property
    def pg_parameters(self) -> PostgresParameters:
        return self.parameters

    @functools.cached_property
    def parameters(self):
        """connection.parameters as the subtype's typed model (validated once per comb object;
        sources read it per record)."""
        from include.honeycomb.source_params import parameters_model

        return parameters_model(self.type, self.subtype).model_validate(self.configuration.connection.parameters)

    @property
    def window_driven(self) -> bool:
        """Database combs read a time window per run; the others resume from a checkpoint."""
        return self.type == "database"

    @property
    def jar_name(self) -> str:
        return self.target.honey_jar or f"{self.name} (honey comb)"


def resolve_env_placeholders(value: Any, where: str = "parameters", env: dict | None = None) -> Any:
    """Replace ${VAR} / ${VAR:-default} in strings (recursively) from the environment."""
    env = os.environ if env is None else env
    if isinstance(value, dict):
        return {k: resolve_env_placeholders(v, f"{where}.{k}", env) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_env_placeholders(v, f"{where}[{i}]", env) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        raise CombConfigError(f"{where}: environment variable ${{{name}}} is not set")

    return _ENV_PLACEHOLDER.sub(sub, value)


def _format_validation_error(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def parse_comb(raw: dict[str, Any], source: str = "<dict>", env: dict | None = None) -> CombDefinition:
    """Validate a raw comb definition. Env placeholders resolve only in connection.parameters."""
    if not isinstance(raw, dict):
        raise CombConfigError(f"{source}: a comb definition must be a mapping, got {type(raw).__name__}")
    name = raw.get("name", "?")
    data = dict(raw)
    try:
        conf = dict(data.get("configuration") or {})
        conn = dict(conf.get("connection") or {})
        if "parameters" in conn:
            conn["parameters"] = resolve_env_placeholders(
                conn["parameters"], "configuration.connection.parameters", env
            )
        conf["connection"] = conn
        data["configuration"] = conf
    except CombConfigError as e:
        raise CombConfigError(f"comb '{name}' ({source}): {e}") from None
    try:
        return CombDefinition.model_validate(data)
    except ValidationError as e:
        raise CombConfigError(f"comb '{name}' ({source}): {_format_validation_error(e)}") from None


MAX_COMB_FILE_BYTES = 256 * 1024
MAX_YAML_NODES = 50_000  # after alias expansion: a real comb has a few hundred
MAX_YAML_DEPTH = 64  # a real comb nests about 6 deep; libyaml's composer recurses (deep input crashes it)


def read_bounded(path: Path, max_bytes: int = MAX_COMB_FILE_BYTES) -> str:
    """A definition file's text, read safely whatever sits at the path: the file is opened without
    blocking (a FIFO answers at once instead of hanging the DAG processor), must be a regular file
    (a symlink to one is fine; a loop, a device, a directory are refused), and its size is checked
    before anything is read (a sparse 512 MB file costs nothing); at most `max_bytes` are read."""
    import errno
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        why = "a symlink loop" if e.errno == errno.ELOOP else (e.strerror or type(e).__name__)
        raise CombConfigError(f"{path}: cannot open the comb definition: {why}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a directory" if stat.S_ISDIR(st.st_mode)
                    else "a socket" if stat.S_ISSOCK(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                    or stat.S_ISBLK(st.st_mode) else "not a regular file")
            raise CombConfigError(f"{path}: {kind}, not a regular file: refused")
        if st.st_size > max_bytes:
            raise CombConfigError(f"{path}: the file is {st.st_size:,} bytes, larger than {max_bytes // 1024} KB: "
                                  "refused unread")
        chunks, total = [], 0
        while total <= max_bytes:  # a file growing while it is read stops at the bound too
            chunk = os.read(fd, min(65536, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise CombConfigError(f"{path}: the file is larger than {max_bytes // 1024} KB")
    try:
        return data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as e:
        raise CombConfigError(f"{path}: cannot read comb definition: not UTF-8 ({e.reason} at byte {e.start})") from None


def _check_depth(text: str, source: str, max_depth: int) -> None:
    """Nesting depth from libyaml's event stream (an iterative parser: safe on any input) before
    anything recursive (the composer, the constructor) sees the document."""
    depth = 0
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        while loader.check_event():
            ev = loader.get_event()
            if isinstance(ev, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
                depth += 1
                if depth > max_depth:
                    raise CombConfigError(f"{source}: the YAML nests deeper than {max_depth} levels: refused")
            elif isinstance(ev, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
                depth -= 1
    finally:
        loader.dispose()


def _expanded_size(root, limit: int) -> int:
    """Nodes of a YAML node graph once every alias is expanded (aliases share nodes; memoised,
    iterative: no recursion limit), stopping as soon as it passes `limit`."""
    sizes: dict[int, int] = {}
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[id(node)] = 1
            continue
        children = [c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode) else node.value
        if not done:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in sizes)
            continue
        n = 1 + sum(sizes.get(id(c), 0) for c in children)
        if n > limit:
            return n
        sizes[id(node)] = n
    return sizes.get(id(root), 0)


def load_yaml_bounded(text: str, source: str, max_bytes: int = MAX_COMB_FILE_BYTES,
                      max_nodes: int = MAX_YAML_NODES, max_depth: int = MAX_YAML_DEPTH) -> Any:
    """Safe YAML with bounds: the text's size, its nesting depth (checked on the event stream:
    30,000 nested `[` would overflow the C stack of libyaml's recursive composer and take the
    whole DAG processor down), and the size once aliases are expanded (a 1 KB "billion laughs"
    alias bomb is refused before anything is built from it)."""
    if len(text.encode("utf-8", "replace")) > max_bytes:
        raise CombConfigError(f"{source}: the file is larger than {max_bytes // 1024} KB")
    try:
        _check_depth(text, source, max_depth)
    except CombConfigError:
        raise
    except (yaml.YAMLError, ValueError, TypeError) as e:
        raise CombConfigError(f"{source}: not valid YAML: {str(e)[:500]}") from None
    # libyaml's parser when the wheel has it (it does on every platform we ship): DAG files
    # parse every comb file, and the C parser is several times faster than the pure-Python one
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        n = _expanded_size(node, max_nodes)
        if n > max_nodes:
            raise CombConfigError(f"{source}: the YAML expands to more than {max_nodes} nodes through its "
                                  "aliases (an alias bomb?); refused")
        return loader.construct_document(node)
    except CombConfigError:
        raise
    except (yaml.YAMLError, RecursionError, ValueError, TypeError) as e:
        raise CombConfigError(f"{source}: not valid YAML: {str(e)[:500]}") from None
    finally:
        loader.dispose()


def load_comb_file(path: Path, env: dict | None = None) -> CombDefinition:
    try:
        raw = load_yaml_bounded(read_bounded(path), str(path))
    except OSError as e:
        raise CombConfigError(f"{path}: cannot read comb definition: {e}") from None
    comb = parse_comb(raw, str(path), env)
    if comb.name != path.stem:
        raise CombConfigError(f"comb '{comb.name}' ({path}): name must match the file name '{path.stem}'")
    return comb


def comb_files(directory: Path | None = None) -> list[Path]:
    d = directory or combs_dir()
    return sorted(p for p in d.glob("*.yaml") if not p.name.startswith("_"))


def load_raw(path: Path) -> dict[str, Any]:
    """The definition as written (placeholders unresolved): what is stored in honey_combs."""
    return load_yaml_bounded(read_bounded(path), str(path))


def invalid_dag_id(path: Path) -> str:
    """A valid, unique DAG id for a comb file that cannot be loaded, whatever its name: the
    stem's safe characters, plus a hash of the name when anything had to be replaced."""
    import hashlib

    stem = path.stem
    safe = re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_").lower()[:150] or "unnamed"
    if safe != stem:
        safe += "_" + hashlib.sha256(path.name.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"honey_comb__{safe}"
