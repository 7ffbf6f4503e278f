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
# CPU per flow (and PostgreSQL's, the tool's), the load average; then per
# scenario the mean cpu/tool of each binary and the change.
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
lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
for r in $(seq 1 "$rounds"); do
	for bin in "$old" "$new"; do
		label=old
		[ "$bin" = "$new" ] && label=new
		"$tool" -gatehouse "$bin" "${flags[@]}" 2>&1 | grep 'flows=' |
			awk -v l="$label" -v r="$r" '{
				out = sprintf("%s round %s %-15s", l, r, $1)
				for (i = 2; i <= NF; i++) if ($i ~ /^(rate|p99|gatehouse_cpu|postgres_cpu|tool_cpu|errors|load)=/) out = out " " $i
				print out
			}' | tee -a "$lines"
	done
done

# The summary: per scenario, the mean over the rounds of Gatehouse's CPU
# per flow divided by the tool's in the same line (cpu/tool: the tool's
# work per flow is the same for both binaries, so the ratio cancels most
# of the machine's drift), new against old, and PostgreSQL's likewise.
awk '
	function val(k,   i, a) { for (i = 5; i <= NF; i++) if (split($i, a, "=") == 2 && a[1] == k) return a[2] + 0; return -1 }
	{
		g = val("gatehouse_cpu"); t = val("tool_cpu"); p = val("postgres_cpu")
		if (g < 0 || t <= 0) next
		k = $4 SUBSEP $1
		if (!($4 in seen)) { seen[$4] = 1; order[++n] = $4 }
		sum[k] += g / t; cnt[k]++
		if (p >= 0) { psum[k] += p / t; pcnt[k]++ }
	}
	END {
		print ""
		print "mean cpu/tool over the rounds, old -> new:"
		for (i = 1; i <= n; i++) {
			s = order[i]; o = s SUBSEP "old"; w = s SUBSEP "new"
			if (!cnt[o] || !cnt[w]) continue
			a = sum[o] / cnt[o]; b = sum[w] / cnt[w]
			line = sprintf("%-15s gatehouse %.2f -> %.2f (%+.1f%%)", s, a, b, (b / a - 1) * 100)
			if (pcnt[o] && pcnt[w]) {
				a = psum[o] / pcnt[o]; b = psum[w] / pcnt[w]
				line = line sprintf("  postgres %.2f -> %.2f (%+.1f%%)", a, b, (b / a - 1) * 100)
			}
			print line
		}
	}' "$lines"
