"""Run a job without Airflow: python -m include.jobs run hourly_aggregation --start ... --end ...
(or --at DATE: the interval that logical date names). Prints the counts of every step."""

from __future__ import annotations

import argparse
import json
import sys
import uuid


def main(argv: list[str]) -> int:
    from include.clients import Clients
    from include.jobs import JOB_MODULES, load_job
    from include.jobs.runner import run_job

    ap = argparse.ArgumentParser(prog="python -m include.jobs")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("job", choices=sorted(JOB_MODULES))
    r.add_argument("--at", help="logical date (ISO-8601): the interval it names")
    r.add_argument("--start")
    r.add_argument("--end")
    r.add_argument("--param", action="append", default=[], help="key=JSON value")
    a = ap.parse_args(argv)
    job = load_job(a.job)
    conf = {k: json.loads(v) for k, v in (p.split("=", 1) for p in a.param)}
    if a.start or a.end:
        conf.update(interval_start=a.start, interval_end=a.end)
    clients = Clients.from_settings()
    try:
        counts = run_job(job, clients, run_key=f"cli__{uuid.uuid4().hex[:12]}", conf=conf, logical_date=a.at)
    finally:
        clients.close()
    print(json.dumps(counts, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
