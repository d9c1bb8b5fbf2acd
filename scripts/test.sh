#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs the unit tests and then (as root) the
# lab integration tests, and prints "N passed, N failed" as its last line. The two projects run
# one after the other: lab tests measure failover gaps and should not share two cores with the
# unit suite.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }

reports=()
rc=0
run() {
  local out
  out=$(mktemp /tmp/hafw-vitest.XXXXXX.json)
  reports+=("$out")
  npx vitest run --project "$1" --reporter=default --reporter=json --outputFile.json="$out" "${@:2}" || rc=1
}
run unit "$@"
if [ "$(id -u)" = 0 ]; then run lab "$@"; else echo "not root: lab tests skipped (they boot real hosts)" >&2; fi

node -e '
  let passed = 0, failed = 0, skipped = 0;
  for (const f of process.argv.slice(1)) {
    let r;
    try { r = JSON.parse(require("fs").readFileSync(f, "utf8")); } catch { failed++; continue; }
    // a file that failed to load has no failed test of its own: count it as one failure
    const broken = (r.testResults || []).filter((t) => t.status === "failed" && !(t.assertionResults || []).some((a) => a.status === "failed")).length;
    passed += r.numPassedTests; failed += r.numFailedTests + broken;
    skipped += (r.numPendingTests || 0) + (r.numTodoTests || 0);
  }
  console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "${reports[@]}"
rm -f "${reports[@]}"
exit $rc
