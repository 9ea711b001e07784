#!/usr/bin/env bash
# Set up, then run the whole pipeline with simulated homes: broker, gateway, detector, alerting and
# its console. An SOS is injected within the first minute. Extra arguments go to `carebed up`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh run
exec .venv/bin/carebed up --demo "$@"
