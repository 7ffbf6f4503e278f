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
# Count packages, not lines: go test prints "ok  <pkg>" or "FAIL\t<pkg>" once
# per package (a build failure prints "FAIL <pkg> [build failed]").
pass=$(grep -cE '^ok[[:space:]]' "$log" || true)
fail=$(grep -cE '^FAIL[[:space:]]+[[:alnum:]]' "$log" || true)
echo
grep -E '^--- FAIL' "$log" || true
echo "packages: ${pass} passed, ${fail} failed"
rm -f "$log"
exit "$status"
