"""Honey comb operators. Each is a thin shell over `include.honeycomb`: it resolves secrets through
the Vault hook, calls the library, records a failure in the execution audit row, and returns a
reference (object keys and counts, never data) through XCom.

Heavy libraries (pyarrow, adbc) are imported inside `execute`, not at module import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from include.honeycomb.config import CombConfigError, combs_dir, load_comb_file
from sting_airflow.lineage import CombLineageMixin


def load_comb(comb_name: str):
    try:
        return load_comb_file(combs_dir() / f"{comb_name}.yaml")
    except CombConfigError as e:
        raise AirflowFailException(str(e)) from None


def window_from(run: dict):
    from include.honeycomb.windows import RunWindow

    return RunWindow.from_dict(run["window"])


class HoneyCombExtractOperator(CombLineageMixin, BaseOperator):
    """Extract a comb run: a database comb's window (scrubbed at the source) is delivered under
    the comb's delivery lock and published at its final key; a checkpointed comb (api,
    file_system, stream) writes what it has beyond its checkpoint to a staging object, which
    `HoneyCombParquetOutputOperator` publishes.

    :param comb_name: the comb (its definition file is `include/combs/<comb_name>.yaml`)
    :param run: the run descriptor from the begin step (execution id, window); templated, so an
        XComArg works
    :param vault_conn_id: Vault connection used for the comb's credentials and hash salt
    """

    template_fields: Sequence[str] = ("run",)
    ui_color = "#f6d776"

    def __init__(self, *, comb_name: str, run: Any, vault_conn_id: str = "vault_default", **kwargs):
        super().__init__(**kwargs)
        self.comb_name = comb_name
        self.run = run
        self.vault_conn_id = vault_conn_id

    def execute(self, context) -> dict:
        from include.honeycomb.pipeline import extract_and_publish
        from include.honeycomb.sources.database import Credentials
        from include.lineage import comb_run
        from sting_airflow.audit import audited_step
        from sting_airflow.hooks import HoneyCombVaultHook, SecretNotFoundError, app_dsn

        comb = load_comb(self.comb_name)
        run = self.run
        dsn = app_dsn()
        with audited_step(run, "extract", context, dsn):
            try:
                vault = HoneyCombVaultHook(vault_conn_id=self.vault_conn_id)
                path = comb.configuration.connection.vault_path
                scrub = comb.configuration.scrubbing
                # The salt is always fetched (profiles may hash any column); tokenize needs the vault keys.
                salt, token_vault = vault.scrubbing_secrets(scrub.salt_vault_path, scrub.may_tokenize)
                if not comb.window_driven:  # api, file_system, stream: resume from the checkpoint
                    from include.honeycomb.checkpointed import extract_to_staging as extract_checkpointed

                    return extract_checkpointed(comb, run, vault.source_secret(path), salt, token_vault, dsn,
                                                hash_key_version=vault.hash_key_version)
                creds = Credentials.from_secret(vault.source_secret(path, ("username", "password")), path)
                # Database combs decide and publish under the comb's delivery lock, in this one step.
                out = extract_and_publish(comb, window_from(run), creds, salt, run["execution_type"], token_vault,
                                          dsn, hash_key_version=vault.hash_key_version)
                self._lineage = comb_run(comb, out, run["execution_type"])
                return out
            except (SecretNotFoundError, CombConfigError) as e:
                raise AirflowFailException(str(e)) from None  # not retryable: fix the config/secret
            except Exception as e:
                from include.honeycomb.errors import is_permanent

                if is_permanent(e):  # bad SQL, 401/403, missing bucket...: a retry would fail the same way
                    raise AirflowFailException(str(e)) from None
                raise  # transient (unreachable, timeout, 5xx, 429, Vault down): retried with backoff


class HoneyCombParquetOutputOperator(CombLineageMixin, BaseOperator):
    """Publish the staged Parquet object at the window's deterministic key
    (`<prefix>/year=YYYY/month=MM/<comb>__<window>.parquet`): a rerun overwrites it.

    :param comb_name: the comb
    :param run: run descriptor (templated)
    :param staged: the extract step's reference (templated, e.g. an XComArg)
    """

    template_fields: Sequence[str] = ("run", "staged")
    ui_color = "#c7e9b4"

    def __init__(self, *, comb_name: str, run: Any, staged: Any, **kwargs):
        super().__init__(**kwargs)
        self.comb_name = comb_name
        self.run = run
        self.staged = staged

    def execute(self, context) -> dict:
        from include.honeycomb.pipeline import publish
        from include.lineage import comb_run
        from sting_airflow.audit import audited_step
        from sting_airflow.hooks import app_dsn

        comb = load_comb(self.comb_name)
        with audited_step(self.run, "write_parquet", context, app_dsn()):
            out = publish(comb, window_from(self.run), self.staged, self.run["execution_type"],
                          self.run.get("output_suffix", ""))
        self._lineage = comb_run(comb, out, self.run["execution_type"])
        return out


class EmbeddingUpsertOperator(BaseOperator):
    """Chunks in (a Parquet object written by the prepare step: id, text, metadata), vectors into
    a Chroma collection; returns the chunk ids written and counts. The model is loaded once per
    worker process (the first call), never per batch.

    :param chunks_ref: `{"bucket", "key", "chunks"}` or None (nothing to embed); templated
    :param collection_name: Chroma collection (default `honey_jar_documents`); templated
    """

    template_fields: Sequence[str] = ("chunks_ref", "collection_name")
    ui_color = "#b4d7e9"

    def __init__(self, *, chunks_ref: Any, collection_name: str = "honey_jar_documents", batch_size: int = 32,
                 **kwargs):
        super().__init__(**kwargs)
        self.chunks_ref = chunks_ref
        self.collection_name = collection_name
        self.batch_size = batch_size

    _lineage: dict | None = None

    def execute(self, context) -> dict:
        from include.documents.ingest import embed_and_upsert

        self._lineage = {}
        out = embed_and_upsert(self.chunks_ref or None, self.collection_name, self.batch_size, lineage=self._lineage)
        self.log.info("upserted %d chunks into %s (embedding %.1fs)", out["upserted"], self.collection_name,
                      out.get("embed_seconds", 0.0))
        return out

    def get_openlineage_facets_on_complete(self, task_instance):  # noqa: ARG002 - the provider's signature
        """The batch's documents -> the collection and document_chunks -> the honey jars."""
        from sting_airflow.lineage import operator_lineage

        return operator_lineage(self._lineage)


class PresidioScrubOperator(BaseOperator):
    """Scrub a CSV / JSON Lines / Parquet object with the privacy engine (the same code path as
    the combs): s3://bucket/key in, the same format out. The salt and the tokenization keys come
    from Vault; the report (per column: action, entity, values scrubbed) is returned via XCom.

    :param input_uri: s3://bucket/key of the input (templated)
    :param output_uri: s3://bucket/key to write (templated; overwritten on rerun)
    :param profile: gdpr, ccpa, hipaa or financial_data (templated)
    :param custom_rules: [{field|pattern, action}] applied before the profile (templated)
    :param text_fields: free-text columns (globs) analysed with Presidio (templated)
    :param text_entities: limit the free-text analysis to these entities (templated)
    :param text_allow_list: terms never flagged in free text (templated)
    :param file_format: csv, jsonl or parquet; default from the input's extension
    """

    template_fields: Sequence[str] = ("input_uri", "output_uri", "profile", "custom_rules", "text_fields",
                                      "text_entities", "text_allow_list")
    template_fields_renderers = {"custom_rules": "json"}
    ui_color = "#e9b4c7"

    def __init__(self, *, input_uri: str, output_uri: str, profile: str | None = "gdpr",
                 custom_rules: list | None = None, text_fields: list | None = None, text_entities: list | None = None,
                 text_allow_list: list | None = None, file_format: str | None = None,
                 vault_conn_id: str = "vault_default", **kwargs):
        super().__init__(**kwargs)
        self.input_uri, self.output_uri, self.profile = input_uri, output_uri, profile
        self.custom_rules, self.text_fields = custom_rules or [], text_fields or []
        self.text_entities, self.text_allow_list = text_entities, text_allow_list or []
        self.file_format, self.vault_conn_id = file_format, vault_conn_id

    def execute(self, context) -> dict:
        from include.privacy.engine import ScrubConfigError, scrub_object
        from sting_airflow.hooks import HoneyCombVaultHook

        may_tokenize = bool(self.profile) or any(r.get("action") == "tokenize" for r in self.custom_rules)
        salt, token_vault = HoneyCombVaultHook(vault_conn_id=self.vault_conn_id).scrubbing_secrets(
            "sting/scrubbing", may_tokenize)
        try:
            report = scrub_object(self.input_uri, self.output_uri, fmt=self.file_format, profile=self.profile or None,
                                  custom_rules=list(self.custom_rules), salt=salt, token_vault=token_vault,
                                  text_fields=list(self.text_fields), text_entities=self.text_entities,
                                  text_allow_list=list(self.text_allow_list))
        except ScrubConfigError as e:
            raise AirflowFailException(str(e)) from None  # bad input or rules: retrying will not help
        self.log.info("scrubbed %s -> %s: %d records, %d with scrubbed values", self.input_uri, self.output_uri,
                      report["records"], report["records_scrubbed"])
        return report
