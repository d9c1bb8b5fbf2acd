#!/usr/bin/env bash
# The main job on embedded defaults: bring up the lab, check, roll out, verify, drill with
# failback, and show the report. Needs root (the lab boots real hosts). A lab of the same site
# left from an earlier run is taken down first. The lab stays up afterwards; `hafw lab down`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
hafw() { node packages/cli/bin/run.js "$@"; }
INV=${1:-inventory/lab.yaml}
OUT=${HAFW_DEMO_OUT:-$PWD/out}
mkdir -p "$OUT"

step() { printf '\n==> %s\n' "$*" >&2; }
step "validate and check $INV with the real tools"
hafw inventory validate "$INV"
hafw check "$INV"
step "lab up"
hafw lab down >/dev/null 2>&1 || true
hafw lab up "$INV"
step "roll out (standby first, health gate, on-host rollback armed)"
hafw apply "$INV" --yes
step "plan again: nothing left to change"
hafw plan "$INV"
step "verify conntrack convergence and pair health"
hafw verify "$INV" --deadline 30
step "failover drill with failback on edge1"
hafw drill "$INV" --pair edge1 --mode graceful --failback --report "$OUT/drill-edge1.html"
step "report"
hafw reports list --limit 5
echo >&2
echo "HTML report: $OUT/drill-edge1.html   (the lab is still up: hafw lab status; hafw lab down)" >&2
