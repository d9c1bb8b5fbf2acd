#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs unit and lab tests, and prints
# "N passed, N failed" as its last line. Lab tests need root (they boot real hosts).
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh || { echo "0 passed, 1 failed"; exit 1; }

report=$(mktemp /tmp/hafw-vitest.XXXXXX.json)
projects=(--project unit)
if [ "$(id -u)" = 0 ]; then projects+=(--project lab); else echo "not root: skipping lab tests" >&2; fi
npx vitest run "${projects[@]}" --reporter=default --reporter=json --outputFile.json="$report" "$@"
rc=$?
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const passed = r.numPassedTests, failed = r.numFailedTests + (r.numRuntimeErrorTestSuites ?? 0), skipped = r.numPendingTests + (r.numTodoTests ?? 0);
  console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$report" 2>/dev/null || echo "0 passed, 1 failed"
rm -f "$report"
exit $rc
