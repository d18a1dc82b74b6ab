#!/usr/bin/env bash
# bench/run.sh: `make bench`. Runs every benchmark of DESIGN.md section 5 (and
# issue 7) with bounded time, on loopback only, and prints ONE markdown table:
# what was measured | mediad | peer | ratio | target | met?, also written to
# bench/results/latest.md with the load average and notes (CPU shares, limits).
#
#   1. bench/bench.py core: /health and /tt-liveness against nginx (same JSON,
#      same run) healthy and with every worker SIGSTOPped; the full request
#      path with the mock runner at 0 ms (1 and 2 workers, keep-alive or not);
#      idle and mid-request wedge detection against their bounds; probe cost
#      per runner at default settings and probe interference; supervisor RSS
#      over 200k requests and with 1,000 idle keep-alive connections.
#   2. the real runners, when `mediad --help` lists them and a server starts
#      with them (checked in step 1): bench/audio.sh (sphinx, flite: server vs
#      the library called directly) and bench/dit.sh (dit: step sgemm rate vs
#      BLIS sgemm), with shortened settings and a timeout from what is left of
#      the time budget.
#
# Env: MEDIAD_BIN (build/mediad); BENCH_BUDGET_SECONDS (570: the whole run
# stays under 10 minutes); BENCH_SCALE (1; < 1 shortens every timed run, for a
# smoke test); DIT_PRESETS ("small base"), DIT_STEPS (4), DIT_REPS (1),
# AUDIO_REPS (3). The machine is shared: compare ratios taken in one run.
set -euo pipefail
cd "$(dirname "$0")/.."

START=$(date +%s)
BUDGET=${BENCH_BUDGET_SECONDS:-570}
export MEDIAD_BIN=${MEDIAD_BIN:-$PWD/build/mediad}
PY=/usr/bin/python3
OUT=bench/results
mkdir -p "$OUT"

for tool in wrk nginx curl; do
	if ! command -v "$tool" >/dev/null; then
		echo "bench/run.sh: $tool is missing: run bash scripts/install-deps.sh --bench" >&2
		exit 1
	fi
done
[[ -x $MEDIAD_BIN ]] || make --no-print-directory all

# 1,000 idle connections need descriptors in mediad (it inherits this) and in
# the client that holds them
hard=$(ulimit -Hn)
if [[ $hard == unlimited || $hard -gt 65536 ]]; then hard=65536; fi
ulimit -n "$hard" 2>/dev/null || true

TMP=$(mktemp -d /tmp/mediad-bench.XXXXXX)
ROWS=$TMP/rows.jsonl
: >"$ROWS"
CHILD=""
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
	if [[ -n $CHILD ]]; then kill -TERM "$CHILD" 2>/dev/null || true; fi
	# keep the server logs of the last run next to the table
	rm -rf "$OUT/logs"
	mkdir -p "$OUT/logs"
	cp "$TMP"/*.log "$OUT/logs/" 2>/dev/null || true
	cp "$TMP"/nginx/error.log "$OUT/logs/nginx-error.log" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

elapsed() { echo $(($(date +%s) - START)); }
row() { "$PY" bench/bench.py row --rows "$ROWS" "$@"; }
note() { "$PY" bench/bench.py note --rows "$ROWS" "$*"; }
free_port() {
	"$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== mediad benchmarks ($(nproc) cores, load average $LOAD_START)" >&2
status=0
"$PY" bench/bench.py core --tmp "$TMP" --rows "$ROWS" &
CHILD=$!
wait "$CHILD" || status=1
CHILD=""

# runner_state NAME: ok, not-built or does-not-start (from the probe-cost section)
runner_state() {
	local s
	s=$(awk -v r="$1" '$1 == r {print $2}' "$TMP/runners" 2>/dev/null || true)
	echo "${s:-unknown}"
}

# run_script NAME SECONDS ENV...: bench/NAME.sh under a timeout (its whole
# process group, servers included), output to bench/results/NAME.log
run_script() {
	local name=$1 secs=$2 rc=0
	shift 2
	echo "== bench/$name.sh (timeout ${secs} s)" >&2
	timeout -k 5 "$secs" env "$@" BENCH_PORT="$(free_port)" bash "bench/$name.sh" \
		>"$OUT/$name.log" 2>&1 &
	CHILD=$!
	wait "$CHILD" || rc=$?
	CHILD=""
	if [[ $rc == 124 || $rc == 137 ]]; then
		note "bench/$name.sh hit its ${secs} s timeout; figures from its partial output" \
			"(bench/results/$name.log)"
	elif [[ $rc != 0 ]]; then
		note "bench/$name.sh exited $rc (bench/results/$name.log)"
	fi
	return 0
}

# the audio runners first, then dit; each gets a share of the time left
sphinx=$(runner_state sphinx)
flite=$(runner_state flite)
if [[ ! -f bench/audio.sh ]]; then
	row "sphinx / flite: server time / library called directly" "bench/audio.sh absent" \
		- - "<= 1.1" -
elif [[ $sphinx != ok || $flite != ok ]]; then
	row "sphinx: server time / library called directly" "${sphinx//-/ }" - - "<= 1.1" -
	row "flite: server time / library called directly" "${flite//-/ }" - - "<= 1.1" -
else
	left=$((BUDGET - $(elapsed)))
	secs=$((left * 55 / 100))
	if ((secs < 30)); then
		row "sphinx / flite" "skipped: time budget spent" - - "<= 1.1" -
	else
		run_script audio "$secs" REPS="${AUDIO_REPS:-3}"
		"$PY" bench/bench.py rows-audio "$OUT/audio.log" --rows "$ROWS" || status=1
	fi
fi

dit=$(runner_state dit)
if [[ ! -f bench/dit.sh ]]; then
	row "dit: step sgemm rate / BLIS sgemm rate" "bench/dit.sh absent" - - ">= 0.5" -
elif [[ $dit != ok ]]; then
	row "dit: step sgemm rate / BLIS sgemm rate" "${dit//-/ }" - - ">= 0.5" -
else
	secs=$((BUDGET - $(elapsed) - 10))
	if ((secs < 30)); then
		row "dit" "skipped: time budget spent" - - ">= 0.5" -
	else
		run_script dit "$secs" PRESETS="${DIT_PRESETS:-small base}" STEPS="${DIT_STEPS:-4}" \
			REPS="${DIT_REPS:-1}"
		"$PY" bench/bench.py rows-dit "$OUT/dit.log" --rows "$ROWS" || status=1
	fi
fi

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
took=$(elapsed)
echo >&2
"$PY" bench/bench.py table --rows "$ROWS" --out "$OUT/latest.md" \
	--header "# mediad benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC')" \
	--header "" \
	--header "$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))," \
	--header "load average $LOAD_START at the start, $LOAD_END at the end; took ${took} s;" \
	--header "mediad $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' + local changes')."
echo
echo "load average: $LOAD_START at the start, $LOAD_END at the end ($(nproc) cores); took ${took} s"
echo "(table, notes and CPU shares in bench/results/latest.md)"
exit "$status"
