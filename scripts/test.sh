#!/usr/bin/env bash
# Runs the whole CI test set and prints go test's summary. Exits non-zero
# when any test fails.
set -uo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=go1.27.3
log=$(mktemp)
go vet ./... || exit 1
go test -count=1 -timeout 40m ./... 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
pass=$(grep -c '^ok ' "$log" || true)
fail=$(grep -cE '^(FAIL|--- FAIL)' "$log" || true)
echo
echo "packages: ${pass} passed, ${fail} failed"
rm -f "$log"
exit "$status"
