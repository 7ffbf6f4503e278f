#!/usr/bin/env bash
# Compares two gatehouse binaries with the load tool, alternating them
# (A B A B ...) so that both see the same machine: on a shared two-core
# machine flows/s moves with the load, Gatehouse's CPU per flow much less.
#
#   scripts/bench-ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [-- gatehouse-bench flags]
#
# Example: the commit before a change against the working tree:
#   git worktree add /tmp/old HEAD~1 && (cd /tmp/old && go build -o /tmp/gh-old ./cmd/gatehouse)
#   go build -o /tmp/gh-new ./cmd/gatehouse
#   scripts/bench-ab.sh /tmp/gh-old /tmp/gh-new 2 -- -engine sqlite -scenario oidc-jit,token
#
# Prints one line per binary, round and scenario: flows/s, p99, Gatehouse
# CPU per flow (and PostgreSQL's, the tool's), the load average.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n 2,13p "$0"; exit 2; }
old=$1 new=$2
shift 2
rounds=2
if [ $# -gt 0 ] && [ "$1" != "--" ]; then rounds=$1; shift; fi
[ "${1:-}" = "--" ] && shift
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(-engine sqlite -sync NORMAL -scenario saml-jit,oidc-jit,app-broker,token,refresh,scim-create -n 4000 -c 16 -duration 6s)

tool=${GATEHOUSE_BENCH:-bin/gatehouse-bench}
if [ ! -x "$tool" ]; then
	mkdir -p bin
	GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3} go build -trimpath -o "$tool" ./cmd/gatehouse-bench
fi
for r in $(seq 1 "$rounds"); do
	for bin in "$old" "$new"; do
		label=old
		[ "$bin" = "$new" ] && label=new
		"$tool" -gatehouse "$bin" "${flags[@]}" 2>&1 | grep 'flows=' |
			awk -v l="$label" -v r="$r" '{
				out = sprintf("%s round %s %-15s", l, r, $1)
				for (i = 2; i <= NF; i++) if ($i ~ /^(rate|p99|gatehouse_cpu|postgres_cpu|tool_cpu|errors|load)=/) out = out " " $i
				print out
			}'
	done
done
