"""Run an Airflow component with the embedding model already in memory:

    python -m sting_airflow.preload scheduler        # local stack (LocalExecutor)
    python -m sting_airflow.preload celery worker    # production workers

(It starts Airflow, so it lives with the Airflow layer, not in the Airflow-free include/.)

Airflow on Linux runs every task in a process forked from the executor's worker (LocalExecutor:
workers fork from the scheduler; Celery: from the worker). Loading the model here, before those
forks, makes every task inherit it copy-on-write: the model is loaded once per worker process,
not once per task. No forward pass runs here (a torch thread pool does not survive fork).
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> int:
    t0 = time.perf_counter()
    from include.documents.embedding import model

    model()
    print(f"[preload] embedding model loaded in {time.perf_counter() - t0:.1f}s; starting airflow {' '.join(argv)}",
          flush=True)
    from airflow.__main__ import main as airflow_main

    sys.argv = ["airflow", *argv]
    return airflow_main() or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
