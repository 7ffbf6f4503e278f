#!/usr/bin/env bash
# Gatehouse side by side with other brokers on this machine, in one run:
# the load tool's app-broker scenario (an app's authorize request → the
# broker → the upstream test IdP → back → code → tokens, a new user every
# sign-in) against each broker in turn, over ROUNDS rounds (the order is
# reversed every other round, so drift in the machine's load hits all
# alike). A fresh database for every run.
#
#   DEX=/path/to/dex scripts/bench-peers.sh [ROUNDS] [-- gatehouse-bench flags]
#
# Environment (all optional):
#   GATEHOUSE        Gatehouse binaries, space-separated (default bin/gatehouse)
#   GATEHOUSE_SYNC   SQLite synchronous settings for Gatehouse (default "NORMAL FULL")
#   DEX              a Dex binary (`dex serve config.yaml`); unset: no Dex runs
#   DEX_STORAGES     Dex storages (default "sqlite3 sqlite3-wal memory": SQLite
#                    as Dex opens it (rollback journal, synchronous=FULL), SQLite
#                    in WAL mode with synchronous=NORMAL like Gatehouse, memory)
#   DEX_ALGS         Dex's signing algorithms (default "RS256 ES256": RS256 is
#                    Dex's default, ES256 what Gatehouse signs with)
#   POLIS            a directory where npm installed @boxyhq/saml-jackson (Ory
#                    Polis), run embedded by scripts/bench-peers-polis.mjs (needs
#                    node); unset: no Polis runs
#   POLIS_STORAGES   Polis's stores (default "memory"; "sqlite" needs
#                    better-sqlite3 built, see docs/benchmarks.md)
#   POLIS_ALGS       Polis's signing algorithms (default "RS256", its default)
#   GATEHOUSE_BENCH  the load tool (default bin/gatehouse-bench, built if missing)
#   CONCURRENCY      concurrent flows to run every broker at, space-separated
#                    (e.g. "16 64"; default: the flags' -c alone). A broker's
#                    best rate is at the concurrency that keeps two cores busy
#                    for it, which differs between brokers.
# Default flags: -n 4000 -c 16 -duration 6s.
#
# Prints one line per round, broker and concurrency: flows/s, p99, the
# broker's CPU per flow (from /proc), the tool's CPU per flow, the upstream
# IdP's (a process of its own, shared by every run: idp_cpu), the load
# average; at the end, per round and concurrency, each Gatehouse line's rate
# and CPU against the best other broker's, and the best other broker's on
# SQLite; with several concurrencies, also each broker's best rate (and
# least CPU) over them.
set -euo pipefail

# Ratios within each round and concurrency: each Gatehouse line against the
# other broker with the most flows/s and the one with the least CPU per
# flow, over all and over those on SQLite. With several concurrencies, the
# same again over each broker's best rate and least CPU in the round.
#
# ratios FILE: those lines of FILE (the result lines of a run); also
# `scripts/bench-peers.sh --ratios FILE`.
ratios() {
	awk '
		function num(f, pre, suf) { sub(pre, "", f); sub(suf, "", f); return f + 0 }
		# add(K, NAME, RATE, CPU, AT) counts one result under key K (a round and
		# concurrency, or a round and "best").
		function add(K, name, rate, cpu, at) {
			keys[K] = 1
			if (name ~ /^gatehouse-/) {
				if (!((K, name) in gi)) { gi[K, name] = ++ng[K]; g[K, ng[K]] = name }
				i = gi[K, name]
				if (rate > grate[K, i]) { grate[K, i] = rate; grat[K, i] = at }
				if (gcpu[K, i] == "" || cpu < gcpu[K, i]) gcpu[K, i] = cpu
				return
			}
			for (k = 0; k < 2; k++) {
				if (k == 1 && name !~ /sqlite/) continue
				if (rate > fast[K, k]) { fast[K, k] = rate; fastn[K, k] = name; fastat[K, k] = at }
				if (lean[K, k] == "" || cpu < lean[K, k]) { lean[K, k] = cpu; leann[K, k] = name }
			}
		}
		/^round/ {
			r = $2; name = $3; rate = -1; cpu = -1; c = ""
			for (i = 4; i <= NF; i++) {
				if ($i ~ /^c=[0-9]+$/) c = num($i, "^c=", "")
				if ($i ~ /^rate=/) rate = num($i, "^rate=", "/s$")
				if ($i ~ /^cpu=/) cpu = num($i, "^cpu=", "ms/flow$")
			}
			if (rate <= 0 || cpu <= 0) next
			if (!(r in seen)) { seen[r] = 1; rounds[++nr] = r }
			if (!(c in seenc)) { seenc[c] = 1; cs[++nc] = c }
			if (!((r, c) in seenrc)) { seenrc[r, c] = 1; ncr[r]++ }
			add(r SUBSEP c, name, rate, cpu, "")
			add(r SUBSEP "best", name, rate, cpu, c == "" ? "" : "c=" c)
		}
		function report(K, label, i, out, k, w, gat, fat) {
			if (!(K in keys)) return
			for (i = 1; i <= ng[K]; i++) {
				gat = grat[K, i] == "" ? "" : " at " grat[K, i]
				out = sprintf("%s %-28s", label, g[K, i] gat)
				for (k = 0; k < 2; k++) {
					if (fastn[K, k] == "") continue
					w = k ? " on SQLite" : ""
					fat = fastat[K, k] == "" ? "" : " at " fastat[K, k]
					out = out sprintf(" flows/s %.2fx %s%s (fastest%s), CPU/flow %.2fx %s (leanest%s);",
						grate[K, i] / fast[K, k], fastn[K, k], fat, w, gcpu[K, i] / lean[K, k], leann[K, k], w)
				}
				print out
			}
		}
		END {
			for (j = 1; j <= nr; j++) {
				r = rounds[j]
				for (m = 1; m <= nc; m++) report(r SUBSEP cs[m], "ratio round " r (cs[m] == "" ? "" : " c=" cs[m]))
				if (ncr[r] > 1) report(r SUBSEP "best", "best  round " r)
			}
		}' "$1"
}

if [ "${1:-}" = "--ratios" ]; then
	ratios "$2"
	exit
fi
cd "$(dirname "$0")/.."

rounds=2
if [ $# -gt 0 ] && [ "$1" != "--" ]; then rounds=$1; shift; fi
[ "${1:-}" = "--" ] && shift
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(-n 4000 -c 16 -duration 6s)
# The flags' own -c, when CONCURRENCY does not list any ("" runs with it).
concurrency=(${CONCURRENCY:-""})

tool=${GATEHOUSE_BENCH:-bin/gatehouse-bench}
if [ ! -x "$tool" ]; then
	mkdir -p bin
	GOTOOLCHAIN=${GOTOOLCHAIN:-go1.27.3} go build -trimpath -o "$tool" ./cmd/gatehouse-bench
fi
gatehouse=${GATEHOUSE:-bin/gatehouse}
for g in $gatehouse; do [ -x "$g" ] || { echo "bench-peers: no Gatehouse binary $g (make build)" >&2; exit 2; }; done
[ -z "${DEX:-}" ] || [ -x "$DEX" ] || { echo "bench-peers: DEX=$DEX is not executable" >&2; exit 2; }
if [ -n "${POLIS:-}" ]; then
	POLIS=$(cd "$POLIS" && pwd)
	[ -d "$POLIS/node_modules/@boxyhq/saml-jackson" ] || { echo "bench-peers: no $POLIS/node_modules/@boxyhq/saml-jackson" >&2; exit 2; }
	command -v node >/dev/null || { echo "bench-peers: POLIS needs node" >&2; exit 2; }
fi

work=$(mktemp -d /tmp/bench-peers.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port prints a loopback TCP port nothing listens on, below Linux's
# ephemeral range (32768-60999): a port in that range can be taken by an
# outgoing connection between this check and the peer's listen (seen: a
# Polis start failing with EADDRINUSE on 32834).
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}

# wait_url URL PID waits (10 s at most) until URL answers 200, while
# process PID lives.
wait_url() {
	for _ in $(seq 1 200); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# cpu_ticks prints a process's user+system CPU time in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# The upstream test IdP, one process for every broker (the others read its
# discovery document at startup; Gatehouse runs point their connection at
# it with -idp-issuer), so each broker's run has the same processes and the
# IdP's CPU is counted apart (idp_cpu). Its issuer is http://localhost:PORT:
# openid-client (Polis) refuses plain HTTP to any other host.
"$tool" -idp-only -idp-addr localhost:0 >"$work/idp.out" 2>&1 &
idp_pid=$!
pids+=("$idp_pid")
for _ in $(seq 1 100); do grep -q '^upstream IdP' "$work/idp.out" && break; sleep 0.05; done
idp=$(awk '/^upstream IdP/ { print $3; exit }' "$work/idp.out")
[ -n "$idp" ] || { cat "$work/idp.out" >&2; exit 1; }
peers=()
if [ -n "${DEX:-}" ]; then
	for s in ${DEX_STORAGES:-sqlite3 sqlite3-wal memory}; do
		for a in ${DEX_ALGS:-RS256 ES256}; do peers+=("dex:$s:$a"); done
	done
fi
if [ -n "${POLIS:-}" ]; then
	for s in ${POLIS_STORAGES:-memory}; do
		for a in ${POLIS_ALGS:-RS256}; do peers+=("polis:$s:$a"); done
	done
fi
for g in $gatehouse; do
	for s in ${GATEHOUSE_SYNC:-NORMAL FULL}; do peers+=("gatehouse:$s:$g"); done
done

# dex_config STORAGE ALG PORT DIR writes Dex's configuration: the upstream
# as an oidc connector, one static client for the app, no approval screen
# (the app is trusted), warnings and errors only in the log.
dex_config() {
	local storage=$1 alg=$2 port=$3 dir=$4
	cat <<EOF
issuer: http://127.0.0.1:$port/dex
web:
  http: 127.0.0.1:$port
logger:
  level: warn
EOF
	if [ "$storage" = sqlite3 ]; then
		# mattn/go-sqlite3's defaults: rollback journal, synchronous=FULL.
		printf 'storage:\n  type: sqlite3\n  config:\n    file: %s/dex.db\n' "$dir"
	elif [ "$storage" = sqlite3-wal ]; then
		# Gatehouse's durability: WAL, synchronous=NORMAL (DSN options
		# of mattn/go-sqlite3).
		printf 'storage:\n  type: sqlite3\n  config:\n    file: "%s/dex.db?_journal_mode=WAL&_synchronous=NORMAL"\n' "$dir"
	else
		printf 'storage:\n  type: %s\n' "$storage"
	fi
	cat <<EOF
signer:
  type: local
  config:
    keysRotationPeriod: 6h
    algorithm: $alg
oauth2:
  skipApprovalScreen: true
staticClients:
  - id: bench-app
    secret: bench-app-secret-0123456789
    name: Bench app
    redirectURIs: ['http://app.example/cb']
connectors:
  - type: oidc
    id: upstream
    name: Upstream
    config:
      issuer: $idp
      clientID: gatehouse-bench
      clientSecret: bench-secret-0123456789
      redirectURI: http://127.0.0.1:$port/dex/callback
EOF
}

# fields keeps the figures that matter of the tool's result line.
fields() {
	awk '/ flows=/ {
		out = ""
		for (i = 2; i <= NF; i++) if ($i ~ /^(flows|errors|rate|p99|gatehouse_cpu|broker_cpu|rss|tool_cpu|load)=/) {
			f = $i; sub(/^(gatehouse|broker)_cpu=/, "cpu=", f); out = out " " f
		}
		print out; next
	}
	/^  error:/ { print "   " $0 }'
}

# with_idp_cpu LABEL TOOL-ARGS...: one run of the tool, its result line
# after LABEL, with the upstream IdP's CPU per flow read around it.
with_idp_cpu() {
	local label=$1 t0 t1 out flows idpms="?"
	shift
	t0=$(cpu_ticks "$idp_pid")
	out=$("$tool" "$@" "${run_flags[@]}" 2>&1 | fields) || true
	t1=$(cpu_ticks "$idp_pid")
	flows=$(sed -n 's/.*flows=\([0-9]*\).*/\1/p' <<<"$out" | head -1)
	[ -n "$flows" ] && [ "$flows" -gt 0 ] && idpms=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v n="$flows" 'BEGIN { printf "%.3f", t * 1000 / hz / n }')
	printf '%s%s idp_cpu=%sms/flow\n' "$label" "$(head -1 <<<"$out")" "$idpms"
	tail -n +2 <<<"$out"
}

# run_external NAME PID ISSUER CLIENT SECRET: app-broker against another
# broker.
run_external() {
	with_idp_cpu "$1" -scenario app-broker -idp-addr "" -issuer "$3" -client-id "$4" -client-secret "$5" \
		-redirect-uri http://app.example/cb -no-login-hint -pid "$2"
}

run_dex() {
	local storage=$1 alg=$2 label=$3 port dir pid
	port=$(free_port)
	dir=$(mktemp -d "$work/dex.XXXX")
	dex_config "$storage" "$alg" "$port" "$dir" >"$dir/config.yaml"
	"$DEX" serve "$dir/config.yaml" >"$dir/log" 2>&1 &
	pid=$!
	pids+=("$pid")
	if ! wait_url "http://127.0.0.1:$port/dex/.well-known/openid-configuration" "$pid"; then
		echo "$label did not start: $(head -5 "$dir/log")"
		kill "$pid" 2>/dev/null || true
		return
	fi
	run_external "$label" "$pid" "http://127.0.0.1:$port/dex" bench-app bench-app-secret-0123456789
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	# What Dex logged at warn or error, but its own shutdown line and the
	# flows the tool's deadline cut off (neither completed nor failed).
	local cut
	cut=$(grep -c 'context canceled' "$dir/log" || true)
	[ "$cut" -eq 0 ] || echo "     dex log: $cut flows cut off by the deadline (context canceled)"
	grep -v -e 'received signal terminated' -e 'context canceled' "$dir/log" | head -3 | sed 's/^/     dex log: /' || true
	rm -rf "$dir"
}

run_polis() {
	local storage=$1 alg=$2 label=$3 port dir pid db=
	port=$(free_port)
	dir=$(mktemp -d "$work/polis.XXXX")
	[ "$storage" = memory ] || db=$dir/polis.db
	(cd "$POLIS" && exec env POLIS_DIR="$POLIS" DB_FILE="$db" PORT="$port" UPSTREAM_ISSUER="$idp" UPSTREAM_CLIENT_ID=gatehouse-bench \
		UPSTREAM_CLIENT_SECRET=bench-secret-0123456789 REDIRECT_URI=http://app.example/cb JWS_ALG="$alg" \
		node "$OLDPWD/scripts/bench-peers-polis.mjs") >"$dir/out" 2>"$dir/log" &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 1 300); do
		grep -q '^client_secret=' "$dir/out" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if ! grep -q '^client_secret=' "$dir/out"; then
		echo "$label did not start: $(head -5 "$dir/log")"
		kill "$pid" 2>/dev/null || true
		return
	fi
	run_external "$label" "$pid" "http://127.0.0.1:$port" "$(sed -n 's/^client_id=//p' "$dir/out")" "$(sed -n 's/^client_secret=//p' "$dir/out")"
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	grep -v '^$' "$dir/log" | head -3 | sed 's/^/     polis log: /' || true
	rm -rf "$dir"
}

run_gatehouse() {
	with_idp_cpu "$3" -gatehouse "$2" -engine sqlite -sync "$1" -scenario app-broker -idp-addr "" -idp-issuer "$idp"
}

echo "# $(date -u '+%Y-%m-%d %H:%M:%S UTC') $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg); flags: ${flags[*]}"
n=${#peers[@]}
for r in $(seq 1 "$rounds"); do
	for c in "${concurrency[@]}"; do
		run_flags=("${flags[@]}")
		cfield=
		if [ -n "$c" ]; then
			run_flags+=(-c "$c") # the last -c counts
			cfield=" c=$c"
		fi
		for k in $(seq 0 $((n - 1))); do
			idx=$k
			[ $((r % 2)) -eq 0 ] && idx=$((n - 1 - k))
			IFS=: read -r kind a b <<<"${peers[$idx]}"
			case $kind in
			dex) name=dex-$a-$b ;;
			polis) name=polis-$a-$b ;;
			gatehouse)
				name=gatehouse-$(basename "$b")-$a
				name=${name/#gatehouse-gatehouse-/gatehouse-}
				;;
			esac
			label=$(printf 'round %s %-28s%s' "$r" "$name" "$cfield")
			# No pipe around the runs: the brokers they start stay this
			# shell's children, which the exit trap stops.
			case $kind in
			dex) run_dex "$a" "$b" "$label" >"$work/run" ;;
			polis) run_polis "$a" "$b" "$label" >"$work/run" ;;
			gatehouse) run_gatehouse "$a" "$b" "$label" >"$work/run" ;;
			esac
			cat "$work/run"
			cat "$work/run" >>"$work/lines"
		done
	done
done

ratios "$work/lines"
