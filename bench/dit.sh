#!/usr/bin/env bash
# bench/dit.sh: the dit runner against the DESIGN.md section 5 target
# ("sgemm-bound: >= 50% of the BLIS sgemm rate measured in the same run")
# and the probe-cost target (deep probes <= 1% of device time).
#
# 1. build/mediad-ditbench (tools/ditbench.c), in one process on a cpu
#    device of THREADS pool threads: the BLIS sgemm rate (1024^3, through
#    the pool and through BLIS's own threads, the better one, measured before
#    and after each preset), then per preset the seconds per guided
#    denoising step at SIZE x SIZE, the sgemm GFLOP/s of that step, the
#    ratio of the two, the latency of one whole image (STEPS steps, decode,
#    PNG) and the deep probe's replay time as a share of the default probe
#    interval (5 s) and of the default deep-probe interval (3 x 5 s).
# 2. Through the server: median latency of REPS requests for a SIZE x SIZE
#    PNG with STEPS steps, per preset (canary off, so no probe competes).
#
# The machine is shared: ratios taken in one run are what to compare.
# Env: PRESETS (default "tiny small base"), THREADS (2), SIZE (256),
# STEPS (20), REPS (3), BENCH_PORT (18791), MEDIAD_BIN (build/mediad).
set -euo pipefail
cd "$(dirname "$0")/.."

PRESETS=${PRESETS:-tiny small base}
THREADS=${THREADS:-2}
SIZE=${SIZE:-256}
STEPS=${STEPS:-20}
REPS=${REPS:-3}
PORT=${BENCH_PORT:-18791}
BIN=${MEDIAD_BIN:-build/mediad}
OUT=bench/results/dit
mkdir -p "$OUT"
# make knows its products by their names relative to the repo root
# (build/mediad-ditbench); run.sh passes an absolute MEDIAD_BIN, so ask for the
# relative names (a fresh clone has no mediad-ditbench yet).
BIN_DIR=$(realpath -m --relative-to=. "$(dirname "$BIN")")
make --no-print-directory "$BIN_DIR/mediad" "$BIN_DIR/mediad-ditbench" >/dev/null

echo "== compute (mediad-ditbench, $THREADS threads)"
# shellcheck disable=SC2086
"$BIN_DIR/mediad-ditbench" --threads "$THREADS" --size "$SIZE" --steps "$STEPS" \
	$PRESETS | tee "$OUT/compute.txt"

SERVER_PID=""
stop_server() {
	if [[ -n $SERVER_PID ]]; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=""
	fi
}
trap stop_server EXIT

start_server() {
	env MODEL_RUNNER=dit DIT_PRESET="$1" MODEL_SERVICE=image NO_AUTH=true \
		SERVICE_HOST=127.0.0.1 SERVICE_PORT="$PORT" WORKER_THREADS="$THREADS" \
		CANARY_ENABLED=false LOG_LEVEL=warn "$BIN" 2>>"$OUT/server.log" &
	SERVER_PID=$!
	for _ in $(seq 1 600); do
		if [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health") == 200 ]]
		then
			return 0
		fi
		sleep 0.1
	done
	echo "bench/dit.sh: the server with preset $1 did not become ready" >&2
	return 1
}

echo "== through the server: ${SIZE}x${SIZE} PNG, $STEPS steps, median of $REPS"
printf "%-6s %10s %10s\n" preset median_s generation_s | tee "$OUT/server.txt"
body=$(printf '{"prompt":"a lighthouse on a cliff at dawn","negative_prompt":"blurry",'`
	`'"width":%d,"height":%d,"num_inference_steps":%d,"seed":1,'`
	`'"image_return_format":"PNG"}' "$SIZE" "$SIZE" "$STEPS")
for preset in $PRESETS; do
	start_server "$preset"
	times=()
	gens=()
	for _ in $(seq 1 "$REPS"); do
		read -r code t < <(curl -s -o "$OUT/last.json" -w '%{http_code} %{time_total}\n' \
			-H 'Content-Type: application/json' -d "$body" \
			"http://127.0.0.1:$PORT/v1/images/generations")
		if [[ $code != 200 ]]; then
			echo "bench/dit.sh: preset $preset answered $code: $(head -c 300 "$OUT/last.json")" >&2
			exit 1
		fi
		times+=("$t")
		gens+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["generation_time"])' \
			"$OUT/last.json")")
	done
	stop_server
	med=$(printf '%s\n' "${times[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	gmed=$(printf '%s\n' "${gens[@]}" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
	printf "%-6s %10.3f %10.3f\n" "$preset" "$med" "$gmed" | tee -a "$OUT/server.txt"
done
