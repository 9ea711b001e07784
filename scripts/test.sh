#!/usr/bin/env bash
# Set up, then run the whole test suite: lint, types, unit and integration tests against a real
# Mosquitto, SQLite and Prism serving Twilio's OpenAPI spec. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/pytest -ra "$@"
