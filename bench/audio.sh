#!/usr/bin/env bash
# bench/audio.sh: real-time factor (RTF = processing time / audio duration)
# of the sphinx and flite runners through the server, against the same
# libraries called directly on the same input (bench/audio_direct.c), and
# the ratio server / direct (DESIGN.md section 5 target: <= 1.1). Then the
# mean duration of each runner's deep probe and the share of device time it
# takes at the default probe settings (one deep probe per >= 3 x 5 s idle).
#
# The speech input is made by the flite server itself (voice rms, WAV) from
# a fixed paragraph, saved next to the results. Canaries are off while
# timing, so no probe competes with the timed requests.
# Env: MEDIAD_BIN (default build/mediad), REPS (default 5), BENCH_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${MEDIAD_BIN:-build/mediad}
REPS=${REPS:-5}
PORT=${BENCH_PORT:-18790}
OUT=bench/results/audio
MODEL_DIR=/usr/share/pocketsphinx/model/en-us
mkdir -p "$OUT"
[[ -x $BIN ]] || make --no-print-directory all

FLITE_LIBS="-lflite_cmu_us_slt -lflite_cmu_us_rms -lflite_cmu_us_awb -lflite_cmu_us_kal16
            -lflite_usenglish -lflite_cmulex -lflite"
# shellcheck disable=SC2046,SC2086
gcc -std=gnu17 -O2 -Wall -Wextra -o "$OUT/audio_direct" bench/audio_direct.c \
	$(pkg-config --cflags --libs pocketsphinx sndfile) $FLITE_LIBS -lm

cat > "$OUT/text.txt" <<'EOF'
The weather is nice today and the sun is shining in the sky. We are going to
the park this afternoon with the children. My brother plays the guitar while
the dog is sleeping on the floor. The meeting starts in ten minutes, so please
send me the report before you leave. She reads a book every night before she
goes to sleep. They live in a small house near the river, and the water is
very cold in the morning. Please open the window and turn off the lights when
you leave the room.
EOF

SERVER_PID=""
stop_server() {
	if [[ -n $SERVER_PID ]]; then
		kill -TERM "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
		SERVER_PID=""
	fi
}
trap stop_server EXIT

# start_server RUNNER SERVICE [ENV=VALUE ...]
start_server() {
	local runner=$1 service=$2
	shift 2
	env MODEL_RUNNER="$runner" MODEL_SERVICE="$service" NO_AUTH=true SERVICE_HOST=127.0.0.1 \
		SERVICE_PORT="$PORT" LOG_LEVEL=warn "$@" "$BIN" 2>>"$OUT/server.log" &
	SERVER_PID=$!
	local url="http://127.0.0.1:$PORT/health"
	for _ in $(seq 1 240); do
		if [[ $(curl -s -o /dev/null -w '%{http_code}' "$url") == 200 ]]; then
			return 0
		fi
		sleep 0.25
	done
	echo "audio.sh: the $runner server did not become ready (see $OUT/server.log)" >&2
	exit 1
}

speech_body() {
	python3 -c 'import json, sys; print(json.dumps({"input": open(sys.argv[1]).read(),
	"voice": "rms", "response_format": "wav"}))' "$OUT/text.txt"
}

# deep_probe_ms: mean deep-probe latency seen by the supervisor, in ms
deep_probe_ms() {
	curl -s "http://127.0.0.1:$PORT/metrics" | awk '
		/^tt_canary_probe_latency_seconds_sum\{.*depth="deep"/ {s = $2}
		/^tt_canary_probe_latency_seconds_count\{.*depth="deep"/ {n = $2}
		END {if (n > 0) printf "%.1f %d\n", 1000 * s / n, n; else print "nan 0"}'
}

field() { sed -E "s/.* $1=([0-9.naN]+).*/\1/" <<<"$2"; }

# compare RUNNER LIB_OUTPUT AUDIO_S_OF_SERVER_OUTPUT
compare() {
	local r=$1 out=$2 s_audio=$3
	awk -v r="$r" -v d="$(field median_s "$out")" -v da="$(field audio_s "$out")" \
		-v s="$(field server_median_s "$out")" -v sa="$s_audio" 'BEGIN {
		printf "%-7s server RTF %.4f (%.3f s for %.2f s of audio)\n", r, s / sa, s, sa
		printf "%-7s direct RTF %.4f (%.3f s for %.2f s of audio)\n", r, d / da, d, da
		printf "%-7s ratio server/direct %.3f (target <= 1.1)\n", r, (s / sa) / (d / da) }'
}

echo "== flite (voice rms): $REPS server requests alternating with $REPS direct calls"
start_server flite tts CANARY_ENABLED=false
speech_body > "$OUT/speech.json"
curl -s -o "$OUT/speech.wav" -H 'Content-Type: application/json' --data-binary @"$OUT/speech.json" \
	"http://127.0.0.1:$PORT/v1/audio/speech"
audio_s=$(python3 -c 'import wave, sys; w = wave.open(sys.argv[1]);
print(w.getnframes() / w.getframerate())' "$OUT/speech.wav")
out=$("$OUT/audio_direct" flite rms "$OUT/text.txt" "$REPS" \
	"curl -s -o /dev/null -w '%{time_total}' -H 'Content-Type: application/json' \
	 --data-binary @$OUT/speech.json http://127.0.0.1:$PORT/v1/audio/speech")
stop_server
compare flite "$out" "$audio_s"

echo "== sphinx on that $(printf '%.1f' "$audio_s") s of speech, alternating as above"
start_server sphinx audio CANARY_ENABLED=false MAX_AUDIO_DURATION_SECONDS=600
curl -s -o "$OUT/transcript.json" -F file=@"$OUT/speech.wav" \
	"http://127.0.0.1:$PORT/v1/audio/transcriptions"
out=$("$OUT/audio_direct" sphinx "$MODEL_DIR" "$OUT/speech.wav" "$REPS" \
	"curl -s -o /dev/null -w '%{time_total}' -F file=@$OUT/speech.wav \
	 http://127.0.0.1:$PORT/v1/audio/transcriptions")
stop_server
compare sphinx "$out" "$audio_s"
echo "sphinx  server said: $(cat "$OUT/transcript.json")"
echo "sphinx  direct said: ${out##*text=}"

echo "== deep probes (default cadence: one per >= 15 s idle)"
for r in sphinx:audio flite:tts; do
	start_server "${r%%:*}" "${r##*:}" CANARY_STARTUP_GRACE_SECONDS=0 CANARY_WAIT_SECONDS=0.5 \
		CANARY_DEEP_EVERY_N=1 CANARY_TICK_SECONDS=0.1
	sleep 8
	read -r ms n < <(deep_probe_ms)
	stop_server
	awk -v r="${r%%:*}" -v ms="$ms" -v n="$n" 'BEGIN {
		printf "%-7s deep probe mean %.1f ms over %d probes = %.2f%% of device time\n",
			r, ms, n, 100 * ms / 1000 / 15 }'
done
