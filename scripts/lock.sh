#!/usr/bin/env bash
# Refresh constraints.txt, the pinned versions every install uses, from a clean venv.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --upgrade pip
"$tmp/venv/bin/pip" install -q -e ".[dev,postgres]"
"$tmp/venv/bin/pip" freeze --exclude-editable | grep -v '^carebed' > constraints.txt
rm -rf "$tmp"
echo "constraints.txt: $(wc -l < constraints.txt) pins"
