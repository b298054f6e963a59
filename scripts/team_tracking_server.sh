#!/usr/bin/env bash
# A team's tracking stack on this machine, as docs/tracking-server.md describes and the tests run
# it: PostgreSQL (a new cluster on a free port), moto's S3 server (IAM checks on) and
# `mlflow server --serve-artifacts` between them. Prints what clients export; Ctrl-C stops it
# all and deletes the data. Needs the Debian package postgresql and the test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m tests.tracking_services
