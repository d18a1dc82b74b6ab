"""Black-box tests of the real audio runners: `sphinx` (speech to text,
pocketsphinx en-us) and `flite` (text to speech), through the real binary.

The shipped clip data/canary.wav (made once with flite's rms voice: "please
turn off the lights") is the input. Its other formats are written here with
libsndfile itself (through ctypes, so no extra tool is needed), at other
rates and channel counts so resampling and the stereo mix-down are on the
path. Every request checks what a client sees: status, content type, JSON
shape, and that a bad upload leaves the worker serving (same pid)."""
import array
import base64
import ctypes
import ctypes.util
import json
import os
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import (AUTH, FAST, ROOT, assert_json_error, inject, metric_sum, multipart, read_wav,
                     start_server, stop_server, wav_bytes)

CANARY = os.path.join(ROOT, "data", "canary.wav")
CANARY_TEXT = "please turn off the lights"
STT = "/v1/audio/transcriptions"
TTS = "/v1/audio/speech"

SENTENCES = [
    "the weather is nice today",
    "please open the window",
    "i would like a cup of coffee",
    "the train leaves at seven in the morning",
    "she reads a book every night",
    "we are going to the park",
    "turn off the lights when you leave",
    "my brother plays the guitar",
    "the children are playing outside",
    "can you help me with this problem",
    "the meeting starts in ten minutes",
    "he bought a new car last week",
    "the dog is sleeping on the floor",
    "i need to call my mother",
    "the store is closed on sunday",
    "they live in a small house",
    "please send me the report",
    "the water is very cold",
    "we had dinner at a restaurant",
    "the sun is shining in the sky",
]


# --- audio helpers ------------------------------------------------------------

def resample(samples, rate, new_rate):
    """Linear interpolation: plenty for speech, and not the server's code."""
    n = int(len(samples) * new_rate / rate)
    out = array.array("h", bytes(2 * n))
    step = rate / new_rate
    for i in range(n):
        x = i * step
        j = int(x)
        f = x - j
        a = samples[j]
        b = samples[j + 1] if j + 1 < len(samples) else a
        out[i] = int(round(a + (b - a) * f))
    return out


def to_stereo(samples):
    out = array.array("h", bytes(4 * len(samples)))
    out[0::2] = samples
    out[1::2] = samples
    return out


class SfInfo(ctypes.Structure):
    _fields_ = [("frames", ctypes.c_int64), ("samplerate", ctypes.c_int),
                ("channels", ctypes.c_int), ("format", ctypes.c_int),
                ("sections", ctypes.c_int), ("seekable", ctypes.c_int)]


SF_FORMATS = {
    "wav": 0x010000 | 0x0002,    # WAV, PCM 16
    "flac": 0x170000 | 0x0002,   # FLAC, PCM 16
    "ogg": 0x200000 | 0x0060,    # OGG, Vorbis
    "opus": 0x200000 | 0x0064,   # OGG, Opus
    "mp3": 0x230000 | 0x0082,    # MPEG, layer III
}


def sndfile_encode(samples, rate, channels, fmt, tmpdir):
    """Encode interleaved 16-bit samples with libsndfile; the file's bytes."""
    lib = ctypes.CDLL(ctypes.util.find_library("sndfile") or "libsndfile.so.1")
    lib.sf_open.restype = ctypes.c_void_p
    lib.sf_open.argtypes = (ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(SfInfo))
    lib.sf_writef_short.restype = ctypes.c_int64
    lib.sf_writef_short.argtypes = (ctypes.c_void_p, ctypes.POINTER(ctypes.c_short),
                                    ctypes.c_int64)
    lib.sf_close.argtypes = (ctypes.c_void_p,)
    path = os.path.join(str(tmpdir), "clip-%s.%s" % (uuid.uuid4().hex[:8], fmt))
    info = SfInfo(0, rate, channels, SF_FORMATS[fmt], 0, 0)
    sf = lib.sf_open(path.encode(), 0x20, ctypes.byref(info))  # SFM_WRITE
    if not sf:
        pytest.skip("libsndfile cannot write %s here" % fmt)
    buf = (ctypes.c_short * len(samples)).from_buffer_copy(samples.tobytes())
    frames = len(samples) // channels
    assert lib.sf_writef_short(sf, buf, frames) == frames
    assert lib.sf_close(sf) == 0
    with open(path, "rb") as f:
        return f.read()


def canary_bytes():
    with open(CANARY, "rb") as f:
        return f.read()


def multi_utterance_clip(gaps=(1.0, 1.2)):
    """The canary three times with silences between: (wav bytes, seconds)."""
    s, rate, _ = read_wav(canary_bytes())
    out = array.array("h", s)
    for g in gaps:
        out.extend(array.array("h", bytes(2 * int(g * rate))))
        out.extend(s)
    return wav_bytes(out, rate), len(out) / rate


def words(text):
    return re.findall(r"[a-z']+", text.lower())


def edit_distance(ref, hyp):
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
            prev, d[j] = d[j], cur
    return d[len(hyp)]


# --- HTTP helpers ---------------------------------------------------------------

def transcribe(s, data, style="multipart", field="file", timeout=60, **fields):
    if style == "json":
        body = {"file": base64.b64encode(data).decode()}
        body.update(fields)
        return s.post(STT, body, timeout=timeout)
    form = {k: ("true" if v is True else str(v)) for k, v in fields.items()}
    raw, ctype = multipart(form, {field: ("clip.bin", "application/octet-stream", data)},
                           prefix="----mediad-audio-")
    return s.request("POST", STT, headers=dict(AUTH, **{"Content-Type": ctype}), raw=raw,
                     timeout=timeout)


def speech(s, text, timeout=60, **fields):
    body = {"input": text}
    body.update(fields)
    return s.post(TTS, body, timeout=timeout)


def assert_error_message(r, statuses, words_in_message=()):
    """r is a JSON error of one of statuses: its message."""
    return assert_json_error(r, statuses, words=words_in_message)["error"]["message"]


@pytest.fixture(scope="module")
def stt():
    s = start_server(dict(FAST, MODEL_RUNNER="sphinx", MODEL_SERVICE="audio"), 60)
    yield s
    stop_server(s)


@pytest.fixture(scope="module")
def tts():
    s = start_server(dict(FAST, MODEL_RUNNER="flite", MODEL_SERVICE="tts"), 60)
    yield s
    stop_server(s)


# --- sphinx -----------------------------------------------------------------------

def test_canary_in_every_format_and_both_upload_styles(stt, tmp_path):
    s16, rate, _ = read_wav(canary_bytes())
    variants = {
        "wav 16k mono (shipped)": canary_bytes(),
        "wav 44.1k stereo": wav_bytes(to_stereo(resample(s16, rate, 44100)), 44100, 2),
        "flac 16k mono": sndfile_encode(s16, rate, 1, "flac", tmp_path),
        "flac 48k stereo": sndfile_encode(to_stereo(resample(s16, rate, 48000)), 48000, 2,
                                          "flac", tmp_path),
        "ogg vorbis 22.05k": sndfile_encode(resample(s16, rate, 22050), 22050, 1, "ogg",
                                            tmp_path),
        "ogg opus 48k stereo": sndfile_encode(to_stereo(resample(s16, rate, 48000)), 48000, 2,
                                              "opus", tmp_path),
        "mp3 24k": sndfile_encode(resample(s16, rate, 24000), 24000, 1, "mp3", tmp_path),
        "mp3 16k": sndfile_encode(s16, rate, 1, "mp3", tmp_path),
    }
    pid = stt.worker_pid()
    ref = words(CANARY_TEXT)
    for name, data in variants.items():
        for style in ("multipart", "json"):
            r = transcribe(stt, data, style)
            assert r.status == 200, (name, style, r.body[:300])
            assert r.header("Content-Type").startswith("application/json")
            text = r.json()["text"]
            errs = edit_distance(ref, words(text))
            print("%-22s %-9s -> %r (%d word errors)" % (name, style, text, errs))
            assert errs <= 1, (name, style, text)
    r = transcribe(stt, canary_bytes())
    assert r.json() == {"text": CANARY_TEXT}
    assert stt.worker_pid() == pid


def test_verbose_json_segments_monotonic_and_within_clip(stt):
    clip, seconds = multi_utterance_clip()
    for style in ("multipart", "json"):
        r = transcribe(stt, clip, style, response_format="verbose_json")
        assert r.status == 200, r.body[:300]
        body = r.json()
        print(style, json.dumps(body))
        assert body["task"] == "transcribe" and body["language"] == "en"
        assert abs(body["duration"] - seconds) < 0.01
        segs = body["segments"]
        assert len(segs) >= 3, segs
        prev_end = 0.0
        for i, sg in enumerate(segs):
            assert sg["id"] == i
            assert prev_end <= sg["start"] < sg["end"] <= body["duration"] + 1e-6, segs
            assert sg["text"].strip()
            prev_end = sg["end"]
        assert body["text"] == " ".join(sg["text"] for sg in segs)
        # the canary is 1.98 s and the first pause 1.0 s: the second segment
        # cannot start before the end of the first canary copy
        assert segs[1]["start"] >= 1.9, segs


def test_text_format_is_plain_text(stt):
    r = transcribe(stt, canary_bytes(), "json", response_format="text")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/plain")
    assert r.body.decode() == CANARY_TEXT + "\n"


def test_stream_gives_several_ndjson_lines_then_ends(stt):
    clip, _ = multi_utterance_clip(gaps=(1.0, 1.0, 1.0))
    for style in ("multipart", "json"):
        t0 = time.monotonic()
        r = transcribe(stt, clip, style, stream=True)
        assert r.status == 200, r.body[:300]
        assert r.header("Content-Type").startswith("application/x-ndjson")
        assert (r.header("Transfer-Encoding") or "").lower() == "chunked"
        lines = [json.loads(l) for l in r.body.decode().splitlines() if l.strip()]
        print(style, "%.2f s" % (time.monotonic() - t0), lines)
        assert len(lines) >= 3, lines
        assert [l["chunk_id"] for l in lines] == list(range(len(lines)))
        assert all(set(l) == {"text", "chunk_id"} and l["text"] for l in lines)
        joined = words(" ".join(l["text"] for l in lines))
        assert edit_distance(words(" ".join([CANARY_TEXT] * 4)), joined) <= 2, lines


def test_bad_uploads_are_4xx_json_and_the_worker_keeps_serving(server_factory, tmp_path):
    s = server_factory(MODEL_RUNNER="sphinx", MODEL_SERVICE="audio",
                       MAX_AUDIO_DURATION_SECONDS="1.5")
    pid = s.worker_pid()
    good, _, _ = read_wav(canary_bytes())
    short = wav_bytes(good[:16000], 16000)  # 1 s: under the 1.5 s limit
    full = canary_bytes()                  # 1.98 s: over it
    flac = sndfile_encode(good[:16000], 16000, 1, "flac", tmp_path)

    def still_serving():
        r = transcribe(s, short)
        assert r.status == 200, r.body[:300]
        assert s.worker_pid() == pid, "the worker was restarted"

    cases = [
        ("not audio", dict(data=b"this is a text file, not audio\n" * 20),
         (422,), ("not audio",)),
        ("not audio (json)", dict(data=b"\x00\x01junk" * 300, style="json"),
         (422,), ("not audio",)),
        ("empty", dict(data=b""), (422,), ("empty",)),
        ("empty (json)", dict(data=b"", style="json"), (400, 422), ("file",)),
        ("truncated wav", dict(data=short[:len(short) // 2]), (422,), ("truncated",)),
        ("truncated flac", dict(data=flac[:len(flac) * 6 // 10]), (422,), ("truncated",)),
        ("header only", dict(data=short[:44]), (422,), ("truncated",)),
        ("too long", dict(data=full), (413,), ("MAX_AUDIO_DURATION_SECONDS", "1.5")),
        ("too long (json)", dict(data=full, style="json"), (413,),
         ("MAX_AUDIO_DURATION_SECONDS",)),
        ("wrong field name", dict(data=short, field="audio"), (400, 422), ("audio",)),
        ("wrong field name, text", dict(data=b"abc", field="upload"), (400, 422), ("file",)),
    ]
    for name, kw, statuses, must in cases:
        data = kw.pop("data")
        r = transcribe(s, data, **kw)
        msg = assert_error_message(r, statuses, must)
        print("%-24s %d %s" % (name, r.status, msg))
        still_serving()
    r = s.post(STT, {"file": "not base64 at all!"})
    assert_error_message(r, (400, 422), ("file",))
    r = transcribe(s, short, "json", language="fr")
    assert_error_message(r, (422,), ("language",))
    still_serving()


def test_sphinx_deep_probe_catches_corrupt_deep(server_factory, capsys):
    s = server_factory(MODEL_RUNNER="sphinx", MODEL_SERVICE="audio",
                       ENABLE_FAULT_INJECTION="true", CANARY_DEEP_EVERY_N="1",
                       CANARY_ON_DEAD="gate", CANARY_DEEP_PROBE_TIMEOUT_SECONDS="5")
    check_corrupt_deep(s, lambda: transcribe(s, canary_bytes()), capsys, "sphinx")


def check_corrupt_deep(s, request, capsys, runner):
    s.wait_for(lambda: metric_sum(s, "mediad_canary_probes_total", depth="deep",
                                  outcome="ok") >= 3, 20, what="three good deep probes")
    # real requests between probes do not change the replay's digest
    assert request().status == 200
    ok = metric_sum(s, "mediad_canary_probes_total", depth="deep", outcome="ok")
    s.wait_for(lambda: metric_sum(s, "mediad_canary_probes_total", depth="deep",
                                  outcome="ok") >= ok + 2, 20, what="deep probes after a request")
    n = metric_sum(s, "tt_canary_probe_latency_seconds_count", depth="deep")
    total = metric_sum(s, "tt_canary_probe_latency_seconds_sum", depth="deep")
    with capsys.disabled():
        print("\n%s deep probe: mean %.1f ms over %d probes" % (runner, 1000 * total / n, n))
    assert metric_sum(s, "mediad_canary_probes_total", depth="deep", outcome="miss") == 0
    inject(s, "0", "corrupt_deep")
    s.wait_for(lambda: s.get("/health").status == 503, 20, what="/health 503 after corrupt_deep")
    err = s.get("/health").json()["error"]
    assert "deep" in err and "digest" in err, err
    assert metric_sum(s, "mediad_canary_probes_total", depth="deep", outcome="miss") >= 2
    r = s.request("DELETE", "/debug/faults", headers=AUTH)
    assert r.status in (200, 204), r.body
    s.wait_for(lambda: s.get("/health").status == 200, 20, what="/health 200 after clearing")
    r = request()  # served as soon as /health says so
    assert r.status == 200, r.body[:300]


def test_two_workers_each_with_a_decoder(server_factory):
    s = server_factory(MODEL_RUNNER="sphinx", MODEL_SERVICE="audio", DEVICE_IDS="(0),(1)")
    s.wait_for(lambda: all(w["is_ready"] for w in s.liveness()["worker_info"].values())
               and len(s.liveness()["worker_info"]) == 2, 60, what="both workers ready")
    with ThreadPoolExecutor(4) as ex:
        rs = list(ex.map(lambda _: transcribe(s, canary_bytes()), range(6)))
    assert all(r.status == 200 and r.json()["text"] == CANARY_TEXT for r in rs), \
        [(r.status, r.body[:200]) for r in rs]
    pids = {w["pid"] for w in s.liveness()["worker_info"].values()}
    assert len(pids) == 2


# --- flite ------------------------------------------------------------------------

def test_speech_formats_content_types_and_durations(tts):
    text = "The quick brown fox jumps over the lazy dog."
    r = speech(tts, text)  # wav is the default
    assert r.status == 200 and r.header("Content-Type") == "audio/wav"
    pcm, rate, ch = read_wav(r.body)
    assert rate == 16000 and ch == 1
    dur = len(pcm) / rate
    assert 1.5 < dur < 6, dur
    r = speech(tts, text, response_format="json")
    assert r.status == 200 and r.header("Content-Type").startswith("application/json")
    j = r.json()
    assert j["format"] == "wav" and j["sample_rate"] == 16000
    jpcm, jrate, _ = read_wav(base64.b64decode(j["audio"]))
    assert jpcm == pcm and abs(j["duration"] - dur) < 0.002
    r = speech(tts, text, response_format="pcm")
    assert r.status == 200 and r.header("Content-Type") == "audio/pcm"
    assert r.body == pcm.tobytes()
    magic = {"flac": (b"fLaC", "audio/flac"), "ogg": (b"OggS", "audio/ogg"),
             "mp3": (None, "audio/mpeg")}
    for fmt, (head, ctype) in magic.items():
        r = speech(tts, text, response_format=fmt)
        if fmt == "mp3" and r.status == 422:
            continue  # no MP3 encoder in this libsndfile
        assert r.status == 200 and r.header("Content-Type") == ctype, (fmt, r.body[:200])
        if head:
            assert r.body.startswith(head), fmt
        else:
            assert r.body[:3] == b"ID3" or r.body[0] == 0xFF, r.body[:4]
    # same input, same bytes (the voices' noise is seeded)
    assert speech(tts, text).body == speech(tts, text).body


def test_voices_speed_and_errors(tts):
    text = "Speech at several speeds."
    durs = {}
    for voice in ("slt", "rms", "awb", "kal16", "kal", "cmu_us_rms"):
        r = speech(tts, text, voice=voice)
        assert r.status == 200, (voice, r.body[:200])
        pcm, rate, _ = read_wav(r.body)
        assert rate == (8000 if voice == "kal" else 16000), voice
        durs[voice] = len(pcm) / rate
    assert speech(tts, text, voice="rms").body == speech(tts, text, voice="cmu_us_rms").body
    slow = read_wav(speech(tts, text, voice="slt", speed=0.5).body)
    fast = read_wav(speech(tts, text, voice="slt", speed=2.0).body)
    d_slow, d_fast = len(slow[0]) / 16000, len(fast[0]) / 16000
    print("durations", durs, "speed 0.5: %.2f s, 2.0: %.2f s" % (d_slow, d_fast))
    assert d_slow > 1.6 * durs["slt"] and d_fast < 0.7 * durs["slt"]
    r = speech(tts, text, voice="alloy")
    assert_error_message(r, (422,), ("voice", "slt", "rms"))
    r = speech(tts, "   \n ")
    assert_error_message(r, (422,), ("input",))
    r = s_post_text(tts)
    assert r.status == 200 and r.header("Content-Type") == "audio/wav"


def s_post_text(tts):
    # the upstream field name `text`
    return tts.post(TTS, {"text": "Upstream clients send text."})


LONG_TEXT = ("Streaming splits long text at sentence boundaries. Each sentence is sent as "
             "soon as it is made. The client hears the first one early! Does it work? "
             "It does, and the last sentence ends the stream.")


def test_speech_stream_long_text(tts, stt):
    n_sent = 5
    # wav: a streaming header, then samples, chunked
    r = speech(tts, LONG_TEXT, stream=True)
    assert r.status == 200 and r.header("Content-Type") == "audio/wav"
    assert (r.header("Transfer-Encoding") or "").lower() == "chunked"
    whole = speech(tts, LONG_TEXT)
    pcm, rate, _ = read_wav(whole.body)
    assert r.body[:4] == b"RIFF" and r.body[40:44] == b"\xff\xff\xff\xff"
    assert r.body[44:] == pcm.tobytes(), "streamed samples equal the one-piece answer"
    # the streamed WAV is itself a valid upload
    t = transcribe(stt, r.body)
    assert t.status == 200, t.body[:300]
    print("stream wav transcribed:", t.json()["text"])
    assert len(words(t.json()["text"])) >= 15
    # json: one NDJSON line per sentence
    r = speech(tts, LONG_TEXT, stream=True, response_format="json")
    assert r.status == 200 and r.header("Content-Type").startswith("application/x-ndjson")
    lines = [json.loads(l) for l in r.body.decode().splitlines() if l.strip()]
    assert len(lines) == n_sent, len(lines)
    assert [l["chunk_id"] for l in lines] == list(range(n_sent))
    total = sum(l["duration"] for l in lines)
    assert abs(total - len(pcm) / rate) < 0.01
    # pcm and the chained formats
    r = speech(tts, LONG_TEXT, stream=True, response_format="pcm")
    assert r.status == 200 and r.body == pcm.tobytes()
    r = speech(tts, LONG_TEXT, stream=True, response_format="ogg")
    assert r.status == 200 and r.body.count(b"OggS\x00\x02") == n_sent  # one BOS per sentence
    r = speech(tts, LONG_TEXT, stream=True, response_format="flac")
    assert r.status == 200 and r.body.startswith(b"fLaC")


def test_round_trip_20_sentences_wer(tts, stt, capsys):
    errors = total = 0
    for i, sentence in enumerate(SENTENCES):
        r = speech(tts, sentence, voice="rms", response_format="flac" if i % 2 else "wav")
        assert r.status == 200, r.body[:200]
        t = transcribe(stt, r.body, "json" if i % 3 == 0 else "multipart")
        assert t.status == 200, t.body[:300]
        hyp = t.json()["text"]
        e = edit_distance(words(sentence), words(hyp))
        errors += e
        total += len(words(sentence))
        if e:
            print("  %r -> %r (%d)" % (sentence, hyp, e))
    wer = errors / total
    with capsys.disabled():
        print("\nround trip flite(rms) -> sphinx: WER %.1f%% over %d sentences (%d words)"
              % (100 * wer, len(SENTENCES), total))
    assert wer <= 0.15


def test_flite_deep_probe_catches_corrupt_deep(server_factory, capsys):
    s = server_factory(MODEL_RUNNER="flite", MODEL_SERVICE="tts",
                       ENABLE_FAULT_INJECTION="true", CANARY_DEEP_EVERY_N="1",
                       CANARY_ON_DEAD="gate", CANARY_DEEP_PROBE_TIMEOUT_SECONDS="5")
    check_corrupt_deep(s, lambda: speech(s, "A real request between probes."), capsys, "flite")
