"""`make demo`: trigger the sample combs through Airflow's REST API and show what landed."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from psycopg.types.json import Jsonb

from include import storage
from include.db import connect
from include.devstack.airflow_api import AirflowAPI
from include.settings import get_settings

SAMPLE_DOCS = Path(__file__).parent / "sample_docs"
DEMO_QUERY = "Which ports do IoT botnets scan for Telnet, and how does the trap capture their binaries?"


def sample_documents() -> dict[str, bytes]:
    """The sample handbook: the files in sample_docs/, plus a PDF and a DOCX made here."""
    import io

    from docx import Document
    from fpdf import FPDF

    docs = {p.name: p.read_bytes() for p in sorted(SAMPLE_DOCS.iterdir())}
    pdf = FPDF()
    pdf.set_creation_date(datetime(2026, 11, 1, tzinfo=UTC))
    pdf.set_font("helvetica", size=11)
    for page in (
        "Incident response playbook. Step 1: confirm the alert in the honey jar event stream and note the "
        "source address, the credentials tried and the commands run.",
        "Step 2: block the source at the edge firewall, add its indicators to the threat intelligence table, "
        "and search the other honey jars for the same indicators over the last 7 days.",
    ):
        pdf.add_page()
        pdf.multi_cell(0, 6, page)
    docs["incident-response-playbook.pdf"] = bytes(pdf.output())
    d = Document()
    d.add_paragraph("On-call handbook: the analyst on call acknowledges critical alerts within 15 minutes.")
    d.add_paragraph("Hand-over happens every Monday at 09:00 UTC with a review of open alerts.")
    buf = io.BytesIO()
    d.save(buf)
    docs["on-call-handbook.docx"] = buf.getvalue()
    return docs


def ingest_sample_documents(api: AirflowAPI) -> str:
    """Upload the handbook into user-files, naming the jar in object metadata, and run the
    document_ingestion DAG for that jar through the REST API."""
    with connect() as conn:
        jar = str(conn.execute(
            """INSERT INTO honey_jars (name, type, description, config) VALUES (%s, 'private', %s, %s)
               ON CONFLICT ((config->>'jar_key')) WHERE config ? 'jar_key' DO UPDATE SET last_accessed = NOW()
               RETURNING id""",
            ("STING handbook (sample)", "Runbooks and policies for the demo", Jsonb({"jar_key": "demo:handbook"})),
        ).fetchone()["id"])
    from include.documents.ingest import register_upload

    for name, data in sample_documents().items():
        key = f"documents/demo-user/{name}"
        put = storage.s3_client().put_object(Bucket="user-files", Key=key, Body=data,
                                             Metadata={"honey-jar-id": jar, "title": name})
        with connect() as conn:  # what the upload API does: record the document as pending
            register_upload(conn, jar, storage.uri("user-files", key), title=name, size=len(data),
                            etag=put["ETag"].strip('"'))
    api.wait_for_dag("document_ingestion")
    api.unpause("document_ingestion")
    run = api.trigger("document_ingestion", conf={"honey_jar_id": jar})
    print(f"triggered document_ingestion run {run['dag_run_id']} for jar {jar}")
    state = api.wait_run("document_ingestion", run["dag_run_id"], timeout=600)["state"]
    deadline = time.time() + 300  # a scheduled run may hold some documents: let it finish
    while any(r["state"] not in ("success", "failed") for r in api.runs("document_ingestion")) and time.time() < deadline:
        time.sleep(2)
    print(f"document_ingestion {run['dag_run_id']}: {state}")
    return jar


def _run(api: AirflowAPI, dag_id: str, conf: dict) -> tuple[bool, str]:
    api.wait_for_dag(dag_id)
    api.unpause(dag_id)
    r = api.trigger(dag_id, conf=conf)
    state = api.wait_run(dag_id, r["dag_run_id"], timeout=600)["state"]
    print(f"{dag_id} run {r['dag_run_id']} conf={conf}: {state}")
    return state == "success", r["dag_run_id"]


def ml_training(api: AirflowAPI) -> bool:
    """Labelled lab traffic (scripted campaigns and benign background, far in the past), then
    weekly_ml_training through the REST API over it: the versions, metrics and gate decisions."""
    from include.clients import Clients
    from include.ml import campaigns, registry

    c = Clients.from_settings()
    x = campaigns.lab_week(datetime.now(UTC))
    loaded = campaigns.load(c, campaigns.generate(x - timedelta(days=14), days=14, seed=1))
    print(f"\n== weekly model training\nlabelled lab traffic, 14 days to {x:%Y-%m-%d %H:%M}: {loaded['messages']} events "
          f"({loaded['stored']} new, {loaded['already']} already stored), {loaded['labels']} labelled windows")
    ok, run_id = _run(api, "weekly_ml_training", {"interval_start": (x - timedelta(days=7)).isoformat(),
                                                  "interval_end": x.isoformat()})
    with c.db() as conn:
        row = conn.execute("SELECT counts FROM job_runs WHERE job = 'weekly_ml_training' AND run_key = %s",
                           (run_id,)).fetchone()
        counts = (row or {}).get("counts") or {}
        for name in registry.MODELS:
            step = counts.get("train_anomaly_detector" if name == "anomaly_detector" else "update_threat_classifier", {})
            cur = registry.promoted(conn, name)
            print(f"  {name}: version {step.get('version')} ({step.get('algorithm')}), "
                  f"{registry.GATE_METRIC[name]} {step.get(registry.GATE_METRIC[name])}"
                  + (f", ROC-AUC {step.get('roc_auc')}" if 'roc_auc' in step else "")
                  + f"; {'promoted' if step.get('promoted') else 'not promoted'}: {step.get('reason')}")
            if cur:
                m = cur["card"].get("comparison") or {}
                if name == "anomaly_detector":
                    for k, v in m.items():
                        h = v["holdout"]
                        print(f"    {k:18s} holdout ROC-AUC {h['roc_auc']}, PR-AUC {h['pr_auc']}")
                else:
                    for k, v in m.items():
                        print(f"    {k:22s} macro-F1 {v.get('macro_f1')}")
                print(f"    promoted now: {cur['version']} ({cur['uri']})")
        d = counts.get("drift_report", {})
        print(f"  drift report: {d.get('report')} (drifted features: {', '.join(d.get('drifted') or []) or 'none'})")
    c.close()
    return ok


def security_analytics(api: AirflowAPI) -> bool:
    """Honeypot traffic into the queue, then the three security DAGs through the REST API."""
    from include.clients import Clients
    from include.devstack.sample_traffic import SENSORS, publish

    c = Clients.from_settings()
    published_at = datetime.now(UTC)
    pub = publish(c.redis, c.s3, seed=int(time.time()) % 100000)
    print(f"\n== security analytics\npublished to queue:events:pending: {pub['messages']} messages ({pub['events']} events, "
          f"{pub['repeats']} exact repeats, {pub['redelivered']} redelivery, {pub['malformed']} malformed, {pub['late']} "
          f"late; {pub['via_objects']} by reference to event-payloads/raw/)")
    ok, run = _run(api, "event_ingestion", {})
    # the DAG also runs every minute once unpaused: what the demo published may have gone to a
    # scheduled run first, so count every run since the publish
    deadline = time.time() + 300
    while time.time() < deadline and any(r["state"] not in ("success", "failed") for r in api.runs("event_ingestion")):
        time.sleep(2)
    with c.db() as conn:
        rows = conn.execute("""SELECT counts->'consume_queue' AS q FROM job_runs WHERE job = 'event_ingestion'
                                  AND started_at >= %s AND status = 'success'""", (published_at,)).fetchall()
    keys = ("received", "stored", "duplicates", "already", "rejected", "alerts_new", "alerts_updated", "payloads_written")
    ingest = {k: sum(int((r["q"] or {}).get(k, 0)) for r in rows) for k in keys}
    reasons: dict = {}
    for r in rows:
        for k, v in ((r["q"] or {}).get("rejected_reasons") or {}).items():
            reasons[k] = reasons.get(k, 0) + v
    print(f"  over {len(rows)} event_ingestion run(s): received {ingest['received']}, stored {ingest['stored']}, "
          f"duplicates folded {ingest['duplicates']}, redelivered (already stored) {ingest['already']}, rejected "
          f"{ingest['rejected']} {reasons}, alerts new {ingest['alerts_new']} / updated {ingest['alerts_updated']}, "
          f"processed payloads {ingest['payloads_written']}")
    with c.db() as conn:
        scored = conn.execute("""SELECT COALESCE(scored_by, 'the rule alone') AS by, count(*) AS n,
                                        round(avg(anomaly_score)::numeric, 3) AS avg_score
                                   FROM events WHERE ingested_at >= %s GROUP BY 1 ORDER BY 2 DESC""",
                              (published_at,)).fetchall()
    for r in scored:
        print(f"  threat levels of {r['n']} events scored with {r['by']} (mean anomaly score {r['avg_score']})")
    now = datetime.now(UTC)
    h = now.replace(minute=0, second=0, microsecond=0)
    good, run = _run(api, "hourly_aggregation", {"interval_start": (h - timedelta(hours=3)).isoformat(),
                                                 "interval_end": (h + timedelta(hours=1)).isoformat()})
    ok &= good
    agg = api.xcoms("hourly_aggregation", run, "aggregate_event_statistics")[0]["value"]
    print(f"  rollups: {agg['hours_recomputed']} hours recomputed ({agg['late_hours']} late), {agg['rollup_rows']} rows")
    good, run = _run(api, "daily_intelligence", {"refetch": True, "lookback_days": 1})
    ok &= good
    feeds = api.xcoms("daily_intelligence", run, "import_threat_feeds")[0]["value"]["feeds"]
    for name, f in feeds.items():
        pages = f", {f['pages']} TAXII pages" if "pages" in f else ""
        print(f"  feed {name}: {f['indicators']} indicators ({f['new']} new, {f['revoked']} revoked, {f['expired']} "
              f"expired, {f['rejected']} rejected{pages}) -> {f['object']}")
    corr = api.xcoms("daily_intelligence", run, "correlate_events")[0]["value"]
    print(f"  correlation: {corr['matches']} event-indicator matches, {corr['new_sightings']} new sightings, "
          f"{corr['alerts']} ioc_match alerts")
    rep = api.xcoms("daily_intelligence", run, "generate_daily_report")[0]["value"]
    print(f"  daily report: {rep['object']} ({rep['pages']} pages, {rep['bytes']} bytes, sha256 {rep['sha256'][:16]}...)")
    with c.db() as conn:
        stats = conn.execute(
            """SELECT hour, j.name AS jar, event_count, unique_sources, round(avg_threat_level::numeric, 1) AS lvl
                 FROM hourly_stats s JOIN honey_jars j ON j.id = s.honeyjar_id
                WHERE hour >= %s AND j.config->>'sensor' = ANY(%s)
                ORDER BY hour DESC, event_count DESC LIMIT 8""", (h - timedelta(hours=3), SENSORS)).fetchall()
        alerts = conn.execute(
            """SELECT alert_type, severity, count(*) AS n, sum(occurrences) AS events FROM alerts a
                 JOIN honey_jars j ON j.id = a.honeyjar_id
                WHERE last_seen_at >= %s AND j.config->>'sensor' = ANY(%s) GROUP BY 1, 2 ORDER BY 2, 1""",
            (h - timedelta(hours=3), SENSORS)).fetchall()
        top = conn.execute(
            """SELECT t.ioc_type, t.ioc_value, round(t.confidence::numeric, 2) AS conf, count(*) AS hits,
                      (SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(t.sources) k) AS sources
                 FROM ioc_sightings s JOIN threat_intel t ON t.id = s.ioc_id JOIN honey_jars j ON j.id = s.honeyjar_id
                WHERE s.sighted_at >= %s AND j.config->>'sensor' = ANY(%s)
                GROUP BY t.id ORDER BY hits DESC, t.ioc_value LIMIT 6""", (published_at - timedelta(hours=3), SENSORS)).fetchall()
    print("  hourly_stats (materialized view):")
    for r in stats:
        print(f"    {r['hour']:%Y-%m-%d %H:00} {r['jar'][:28]:28s} {r['event_count']:5d} events, "
              f"{r['unique_sources']:3d} sources, avg level {r['lvl']}")
    print("  alerts (rule, severity: alerts / events folded in):")
    for r in alerts:
        print(f"    {r['alert_type']:15s} {r['severity']:8s} {r['n']:3d} / {r['events']}")
    print("  indicators sighted in the sample traffic (correlation hits):")
    for r in top:
        print(f"    {r['ioc_type']:6s} {r['ioc_value'][:48]:48s} confidence {r['conf']} hits {r['hits']} ({r['sources']})")
    with c.db() as conn:
        jar = conn.execute("SELECT id FROM honey_jars WHERE config->>'sensor' = %s", (SENSORS[0],)).fetchone()
    if jar:
        key = f"stats:honeyjar:{jar['id']}:hourly"
        fields = {k.decode(): v.decode() for k, v in c.redis.hgetall(key).items()}
        last = max(fields) if fields else None
        print(f"  redis {key}: {len(fields)} hour field(s), ttl {c.redis.ttl(key)} s; {last}: {fields.get(last)}")
    c.close()
    return ok and ingest["stored"] > 0 and bool(top)


def main() -> int:
    from include.devstack.sample_data import SAMPLE_STREAM, publish_sample_events, write_sample_landing
    from include.settings import REPO_ROOT

    api = AirflowAPI()
    started = datetime.now(UTC)
    end = started.replace(minute=0, second=0, microsecond=0)
    landing = REPO_ROOT / ".stack" / "landing" / "sessions"
    files = write_sample_landing(landing)
    print(f"landing folder {landing}: {len(files)} session exports (one with a malformed line)")
    print(f"redis stream {SAMPLE_STREAM}: {publish_sample_events()} messages after publishing 200 (one malformed)")
    runs = {
        # database/postgresql, incremental: the last 3 days as one explicit window
        "honey_comb__sample_customers": {"window_start": (end - timedelta(days=3)).isoformat(),
                                         "window_end": end.isoformat()},
        # database/postgresql, snapshot_generation: the whole table into a new jar
        "honey_comb__sample_support_tickets": {},
        # database/mariadb: a snapshot of the whole inventory into the comb's jar
        "honey_comb__sample_assets_mariadb": {"mode": "snapshot"},
        # api/rest: what the feed has beyond the checkpoint (all of it on the first run)
        "honey_comb__sample_threat_feed_api": {},
        # file_system/local: files not taken before
        "honey_comb__sample_sessions_files": {},
        # stream/redis_streams: new messages, acknowledged after the output is committed
        "honey_comb__sample_events_stream": {},
    }
    triggered = {}
    for dag_id, conf in runs.items():
        api.wait_for_dag(dag_id)
        api.unpause(dag_id)
        r = api.trigger(dag_id, conf=conf)
        triggered[dag_id] = r["dag_run_id"]
        print(f"triggered {dag_id} run {r['dag_run_id']} conf={conf}")
    ok = True
    for dag_id, run_id in triggered.items():
        r = api.wait_run(dag_id, run_id, timeout=600)
        print(f"{dag_id} {run_id}: {r['state']}")
        ok &= r["state"] == "success"
    # Unpausing also starts each DAG's latest scheduled interval (catchup off): it may run before
    # or after the manual run and take the new data first. Wait for those too and show every run.
    deadline = time.time() + 600
    while time.time() < deadline and any(
            x["state"] not in ("success", "failed") for d in triggered for x in api.runs(d)):
        time.sleep(2)
    print()
    with connect() as conn:
        rows = conn.execute(
            """
            SELECT c.name AS comb, c.type, c.subtype, e.run_key, e.status, e.records_processed, e.records_scrubbed,
                   e.error_message, j.name AS jar, j.document_count, e.metadata->'output'->>'uri' AS uri,
                   COALESCE((e.metadata->>'duplicates_skipped')::int, 0) AS already,
                   COALESCE((e.metadata->>'records_rejected')::int, 0) AS rejected, e.metadata->'rejects' AS rejects
              FROM honey_comb_executions e JOIN honey_combs c ON c.id = e.comb_id
              LEFT JOIN honey_jars j ON j.id = e.target_honey_jar_id
             WHERE c.name = ANY(%s) AND COALESCE(e.completed_at, NOW()) >= %s  -- ran during the demo
             ORDER BY c.type, c.name, e.started_at
            """,
            ([d.removeprefix("honey_comb__") for d in triggered], started),
        ).fetchall()
    for row in rows:
        print(f"comb {row['comb']} ({row['type']}/{row['subtype']}) run {row['run_key']}:\n  {row['status']}, "
              f"{row['records_processed']} "
              f"rows ({row['records_scrubbed']} scrubbed; {row['already']} already delivered, skipped; "
              f"{row['rejected']} rejected)")
        if row["type"] != "database" and row["status"] == "completed" and not row["records_processed"]:
            print("  (nothing new past its checkpoint: the checkpoint and the file ledger live in PostgreSQL and "
                  "outlive the stack, so a second demo, or another checkout on this machine, starts from there)")
        for rej in (row["rejects"] or [])[:2]:
            print(f"  rejected: {rej['error'][:140]}")
        print(f"  parquet: {row['uri']}")
        print(f"  honey jar: '{row['jar']}' with {row['document_count']} document(s)")
        if row["error_message"]:
            print(f"  error: {row['error_message']}")
    ok &= ml_training(api)  # first: event_ingestion then scores with the promoted detector
    ok &= security_analytics(api)
    jar = ingest_sample_documents(api)
    with connect() as conn:
        docs = conn.execute("SELECT title, processing_status, chunk_count FROM documents WHERE honey_jar_id = %s "
                            "ORDER BY title", (jar,)).fetchall()
        count = conn.execute("SELECT document_count FROM honey_jars WHERE id = %s", (jar,)).fetchone()["document_count"]
    print(f"\nhoney jar 'STING handbook (sample)': {count} documents")
    for d in docs:
        print(f"  {d['title']:34s} {d['processing_status']:10s} {d['chunk_count']} chunks")
    from include.documents.search import search

    result = search(DEMO_QUERY, [jar], k=3)
    print(f"\nsearch: {DEMO_QUERY}")
    for x in result["results"]:
        print(f"  {x['rank']}. [{x['score']:.3f}] {x['title']}: {' '.join(x['text'].split())[:110]}...")
    ok &= all(d["processing_status"] == "completed" for d in docs) and bool(result["results"])

    bucket = get_settings().comb_output_bucket
    for comb in ("sample_customers", "sample_support_tickets", "sample_assets_mariadb", "sample_threat_feed_api",
                 "sample_sessions_files", "sample_events_stream"):
        keys = [o["Key"] for o in storage.list_keys(bucket, f"{comb}/")]
        print(f"\nParquet objects of comb {comb} in s3://{bucket}: {len(keys)}")
        for k in keys[-3:]:
            print(f"  {k}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
