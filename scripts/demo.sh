#!/usr/bin/env bash
# The main job on embedded defaults: bring up the lab, render and check, roll out, drill, and show
# the report. Needs root (the lab boots real hosts). Re-running first tears the old lab down.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
hafw() { node packages/cli/bin/run.js "$@"; }
INV=${1:-inventory/lab.yaml}

hafw lab down >/dev/null 2>&1 || true
hafw inventory validate "$INV"
hafw check "$INV"
hafw lab up "$INV"
hafw lab status
