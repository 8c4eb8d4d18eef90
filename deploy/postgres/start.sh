#!/bin/sh
# PostgreSQL plus the pgBackRest TLS server (the Airflow worker, the repository host, runs
# backups through it: pgbackrest-worker.conf). Both as the postgres user.
set -e
gosu postgres pgbackrest server &
exec docker-entrypoint.sh "$@"
