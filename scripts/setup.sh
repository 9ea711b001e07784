#!/usr/bin/env bash
# Set up carebed on a Debian/Ubuntu machine: system packages, .venv with pinned Python packages,
# and (for the tests) Prism, the local stand-in for Twilio's REST API.
# Usage: scripts/setup.sh [run|test]
set -euo pipefail
cd "$(dirname "$0")/.."
purpose="${1:-run}"

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
if [ "$purpose" = test ]; then
  command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  command -v victoria-metrics >/dev/null 2>&1 || missing+=(victoria-metrics)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)  # promtool checks the alert rules
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=(fonts-wqy-microhei)  # Chinese in screenshots
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing system packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"carebed needs Python 3.11 or newer; this is {sys.version.split()[0]}")
PY

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ "$purpose" = test ]; then
  .venv/bin/python -m pip install -q -c constraints.txt -e ".[dev,postgres]"
  npm ci --silent --no-audit --no-fund --prefix deploy/test-tools
else
  .venv/bin/python -m pip install -q -c constraints.txt -e .
fi
