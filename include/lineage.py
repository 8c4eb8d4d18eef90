"""Lineage of a honey comb run in plain terms: source -> S3 object -> honey jar, each dataset
with its data classification. The Airflow side (plugins/sting_airflow/lineage.py) turns this into
OpenLineage datasets with facets, which the OpenLineage provider emits on task completion.

Dataset naming follows OpenLineage's conventions: `postgres://host:port` + `database.schema.table`,
`mysql://host:port` + `database.table`, `s3://bucket` + key, the API's base URL + endpoint, the
file system's folder, the stream's server + stream/subject; honey jars are `sting://honey-jars` +
the jar's name.
"""

from __future__ import annotations

JARS_NAMESPACE = "sting://honey-jars"


def comb_source(comb) -> dict:
    """The dataset a comb reads (never a credential: hosts, names and paths only)."""
    p = comb.configuration.connection.parameters
    ex = comb.configuration.extraction
    if comb.type == "database":
        scheme = "postgres" if comb.subtype == "postgresql" else "mysql"
        table = ex.table or "query_template"
        name = f"{p.get('database')}.{table}" if "." in table or scheme == "mysql" else \
            f"{p.get('database')}.{p.get('schema', 'public')}.{table}"
        return {"namespace": f"{scheme}://{p.get('host')}:{p.get('port')}", "name": name}
    if comb.type == "api":
        return {"namespace": str(p.get("base_url", "")).rstrip("/"), "name": str(p.get("endpoint", "/"))}
    if comb.type == "file_system":
        if p.get("bucket"):
            return {"namespace": f"s3://{p['bucket']}", "name": str(p.get("prefix", "")) or "/"}
        return {"namespace": "file", "name": str(p.get("path"))}
    return {"namespace": f"{comb.subtype}://{p.get('host') or p.get('servers') or p.get('url') or 'local'}",
            "name": str(p.get("stream") or p.get("subject") or comb.name)}


def comb_run(comb, published: dict, execution_type: str = "continuous_flow") -> dict:
    """inputs/outputs of a run that published `published` (bucket, key, rows, bytes)."""
    cls = comb.classification
    inputs = [{**comb_source(comb), "classification": cls}]
    outputs = []
    if published.get("bucket") and published.get("key"):
        outputs.append({"namespace": f"s3://{published['bucket']}", "name": published["key"], "classification": cls,
                        "rows": published.get("records_processed", published.get("rows")),
                        "bytes": published.get("bytes")})
    jar = comb.target.honey_jar or comb.name
    if execution_type == "snapshot_generation":
        jar = f"{comb.name} snapshots"
    outputs.append({"namespace": JARS_NAMESPACE, "name": jar, "classification": cls})
    return {"inputs": inputs, "outputs": outputs}


def _object(uri: str) -> dict:
    from include.classification import BUCKETS

    if uri.startswith("s3://"):
        bucket, _, key = uri[5:].partition("/")
        return {"namespace": f"s3://{bucket}", "name": key or "/", "classification": BUCKETS.get(bucket, "confidential")}
    return {"namespace": "file", "name": uri, "classification": "confidential"}


def document_batch(documents: list[tuple[str, str]], collection: str, chunks: int) -> dict:
    """A document batch's lineage: its documents' objects -> the Chroma collection and the
    full-text table that now hold their chunks -> the honey jars they belong to.
    `documents` is (upload_path, jar name) per document."""
    from include.classification import TABLES
    from include.settings import get_settings

    s = get_settings()
    inputs = [_object(path) for path in sorted({p for p, _ in documents})]
    cls = TABLES["document_chunks"]
    outputs = [
        {"namespace": f"chroma://{s.chroma_host}:{s.chroma_port}", "name": collection, "classification": cls,
         "rows": chunks},
        {"namespace": f"postgres://{s.app_pg_host}:{s.app_pg_port}", "name": f"{s.app_db}.public.document_chunks",
         "classification": cls, "rows": chunks},
        *({"namespace": JARS_NAMESPACE, "name": jar, "classification": cls} for jar in sorted({j for _, j in documents})),
    ]
    return {"inputs": inputs, "outputs": outputs}
