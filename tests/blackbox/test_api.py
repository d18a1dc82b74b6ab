"""Black-box tests of the HTTP API (API.md): every route of MODEL_SERVICE=all
answers with the right shape, the conventions every response follows
(request ids, compact JSON, legacy aliases), auth, bad input and /metrics.

Most tests share one module-scoped server (mock runner, every service); the
scenarios that need other settings start their own."""
import base64
import io
import json
import math
import re
import subprocess
import uuid
import wave

import pytest

from harness import (AUTH, FAST, Server, assert_json_error, hdr, jpeg_size, multipart,
                     png_size, raw_http, start_server, stop_server, strip_json_strings,
                     wav_bytes)

ORG = {"X-TT-Organization": "org-a"}
OTHER_ORG = {"X-TT-Organization": "org-b"}
PROMTOOL = "/usr/bin/promtool"


# --- fixtures and helpers ---------------------------------------------------

@pytest.fixture(scope="module")
def srv():
    env = dict(FAST)
    env["MODEL_SERVICE"] = "all"
    s = start_server(env)
    try:
        yield s
    finally:
        stop_server(s)


def make_wav(seconds=1.0, rate=16000, freq=440.0):
    """A mono 16-bit PCM WAV of a sine tone."""
    n = int(seconds * rate)
    return wav_bytes((int(8000 * math.sin(2 * math.pi * freq * i / rate)) for i in range(n)),
                     rate)


WAV = make_wav(1.0)
WAV_B64 = base64.b64encode(WAV).decode()


def image(srv, **body):
    body.setdefault("prompt", "a red bicycle")
    r = srv.post("/v1/images/generations", body)
    assert r.status == 200, (r.status, r.body[:500])
    assert r.header("Content-Type").startswith("application/json")
    return r.json()


def decoded_images(body):
    assert isinstance(body["images"], list) and body["images"]
    assert isinstance(body["data"], list) and len(body["data"]) == len(body["images"])
    for img, d in zip(body["images"], body["data"]):
        assert d["b64_json"] == img
    return [base64.b64decode(i, validate=True) for i in body["images"]]


def valid_image_ok(srv):
    """The server still serves: a valid request right after succeeds."""
    r = srv.post("/v1/images/generations", {"prompt": "still alive", "width": 64, "height": 64,
                                            "num_inference_steps": 4})
    assert r.status == 200, (r.status, r.body[:300])
    assert r.json()["images"]


# --- images -----------------------------------------------------------------

def test_image_png_shape_and_size(srv):
    body = image(srv, seed=42, image_return_format="PNG", width=128, height=64,
                 num_inference_steps=4)
    imgs = decoded_images(body)
    assert len(imgs) == 1
    assert png_size(imgs[0]) == (128, 64)
    assert body["seed"] == 42
    assert isinstance(body["generation_time"], (int, float)) and body["generation_time"] >= 0
    assert isinstance(body["created"], int) and body["created"] > 1600000000


def test_image_jpeg_is_the_default_format(srv):
    body = image(srv, seed=7, width=64, height=96, num_inference_steps=4)
    imgs = decoded_images(body)
    assert jpeg_size(imgs[0]) == (64, 96)
    # explicit JPEG (any case) is the same thing
    body2 = image(srv, seed=7, width=64, height=96, num_inference_steps=4,
                  image_return_format="jpeg")
    assert body2["images"] == body["images"]


def test_image_same_seed_identical_different_seed_differs(srv):
    params = dict(prompt="a lighthouse at dusk", width=64, height=64, num_inference_steps=4,
                  image_return_format="PNG")
    a = decoded_images(image(srv, seed=1234, **params))[0]
    b = decoded_images(image(srv, seed=1234, **params))[0]
    c = decoded_images(image(srv, seed=1235, **params))[0]
    assert a == b
    assert a != c
    # no seed: a random one is used and returned, and it reproduces the image
    body = image(srv, **params)
    seed = body["seed"]
    assert isinstance(seed, int) and seed >= 0
    again = image(srv, seed=seed, **params)
    assert again["images"] == body["images"]


def test_image_openai_aliases_n_and_size(srv):
    body = image(srv, seed=5, n=2, size="64x96", image_return_format="PNG",
                 num_inference_steps=4, response_format="b64_json")
    imgs = decoded_images(body)
    assert len(imgs) == 2
    assert [png_size(i) for i in imgs] == [(64, 96), (64, 96)]
    # the alias agrees with the upstream name
    body2 = image(srv, seed=5, number_of_images=2, width=64, height=96,
                  image_return_format="PNG", num_inference_steps=4)
    assert body2["images"] == body["images"]
    # conflicting alias values are rejected, naming the alias
    r = srv.post("/v1/images/generations", {"prompt": "x", "n": 3, "number_of_images": 2})
    assert_json_error(r, 422, param="n")


# --- audio ------------------------------------------------------------------

def test_transcription_json_body_formats(srv):
    r = srv.post("/v1/audio/transcriptions", {"file": WAV_B64})
    assert r.status == 200, r.body[:300]
    assert r.header("Content-Type").startswith("application/json")
    text = r.json()["text"]
    assert isinstance(text, str) and text.strip()

    wav2 = make_wav(2.0)
    r = srv.post("/v1/audio/transcriptions", {"file": base64.b64encode(wav2).decode(),
                                              "response_format": "verbose_json",
                                              "language": "en"})
    assert r.status == 200, r.body[:300]
    v = r.json()
    assert v["text"] == text
    assert v["language"] == "en"
    assert abs(v["duration"] - 2.0) < 0.1, v["duration"]
    assert v["segments"], v
    for seg in v["segments"]:
        assert set(seg) >= {"id", "start", "end", "text"}
        assert 0 <= seg["start"] <= seg["end"] <= v["duration"] + 0.01

    r = srv.post("/v1/audio/transcriptions", {"file": WAV_B64, "response_format": "text"})
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/plain")
    assert r.body.decode().strip() == text


def test_transcription_multipart_upload(srv):
    body, ctype = multipart({"response_format": "verbose_json", "language": "en"},
                            {"file": ("clip.wav", "audio/wav", make_wav(2.0))})
    r = srv.post("/v1/audio/transcriptions", raw=body, headers={"Content-Type": ctype})
    assert r.status == 200, r.body[:500]
    v = r.json()
    assert isinstance(v["text"], str) and v["text"].strip()
    assert abs(v["duration"] - 2.0) < 0.1
    assert v["segments"]
    # default response_format json
    body, ctype = multipart({}, {"file": ("clip.wav", "audio/wav", WAV)})
    r = srv.post("/v1/audio/transcriptions", raw=body, headers={"Content-Type": ctype})
    assert r.status == 200, r.body[:500]
    assert set(r.json()) == {"text"}
    # a multipart body without the file part is a 422 naming file
    body, ctype = multipart({"response_format": "json"}, {})
    r = srv.post("/v1/audio/transcriptions", raw=body, headers={"Content-Type": ctype})
    assert_json_error(r, 422, param="file")
    valid_image_ok(srv)


def test_transcription_stream_ndjson(srv):
    r = srv.post("/v1/audio/transcriptions", {"file": WAV_B64, "stream": True})
    assert r.status == 200, r.body[:300]
    assert "ndjson" in r.header("Content-Type")
    lines = [l for l in r.body.decode().split("\n") if l.strip()]
    assert len(lines) >= 2, r.body
    ids = []
    for line in lines:
        obj = json.loads(line)
        assert isinstance(obj["text"], str)
        ids.append(obj["chunk_id"])
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # multipart stream=true (a form string) streams as well
    body, ctype = multipart({"stream": "true"}, {"file": ("clip.wav", "audio/wav", WAV)})
    r = srv.post("/v1/audio/transcriptions", raw=body, headers={"Content-Type": ctype})
    assert r.status == 200
    assert len([l for l in r.body.decode().split("\n") if l.strip()]) >= 2


def test_translation_route(srv):
    r = srv.post("/v1/audio/translations", {"file": WAV_B64, "response_format": "json"})
    assert r.status == 200, r.body[:300]
    assert isinstance(r.json()["text"], str) and r.json()["text"]


def parse_wav(data):
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE", data[:16]
    with wave.open(io.BytesIO(data)) as w:
        return w.getnframes(), w.getframerate(), w.getnchannels()


def test_speech_wav_default_and_text_alias(srv):
    r = srv.post("/v1/audio/speech", {"input": "Hello from the speech test."})
    assert r.status == 200, r.body[:300]
    assert r.header("Content-Type") == "audio/wav"
    frames, rate, ch = parse_wav(r.body)
    assert frames > 0 and rate > 0 and ch >= 1
    # upstream name `text` gives the same audio
    r2 = srv.post("/v1/audio/speech", {"text": "Hello from the speech test."})
    assert r2.status == 200
    assert r2.body == r.body
    # neither given: 422 naming input
    assert_json_error(srv.post("/v1/audio/speech", {"voice": "x"}), 422, param="input")


def test_speech_json_format(srv):
    r = srv.post("/v1/audio/speech", {"input": "Some words to say", "response_format": "json"})
    assert r.status == 200, r.body[:300]
    assert r.header("Content-Type").startswith("application/json")
    body = r.json()
    assert body["format"] == "wav"
    frames, rate, _ = parse_wav(base64.b64decode(body["audio"], validate=True))
    assert rate == body["sample_rate"]
    assert body["duration"] > 0
    assert abs(frames / rate - body["duration"]) < 0.01


@pytest.mark.parametrize("fmt,ctype,magic", [("flac", "audio/flac", b"fLaC"),
                                             ("ogg", "audio/ogg", b"OggS")])
def test_speech_binary_formats(srv, fmt, ctype, magic):
    r = srv.post("/v1/audio/speech", {"input": "Testing formats", "response_format": fmt})
    assert r.status == 200, r.body[:300]
    assert r.header("Content-Type") == ctype
    assert r.body[:4] == magic


# --- text -------------------------------------------------------------------

CHAT = {"model": "mediad-mock", "messages": [{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": "Say something."}],
        "max_tokens": 12, "seed": 3}


def test_chat_completion_object(srv):
    r = srv.post("/v1/chat/completions", CHAT)
    assert r.status == 200, r.body[:300]
    assert r.header("Content-Type").startswith("application/json")
    c = r.json()
    assert c["object"] == "chat.completion"
    assert isinstance(c["id"], str) and c["id"]
    assert isinstance(c["created"], int)
    assert c["model"] == "mediad-mock"
    ch = c["choices"][0]
    assert ch["index"] == 0
    assert ch["message"]["role"] == "assistant"
    assert isinstance(ch["message"]["content"], str) and ch["message"]["content"]
    assert ch["finish_reason"] in ("stop", "length")
    u = c["usage"]
    assert u["prompt_tokens"] > 0 and u["completion_tokens"] > 0
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert u["completion_tokens"] <= CHAT["max_tokens"]


def parse_sse(body):
    events = []
    for block in body.decode().split("\n\n"):
        block = block.strip("\n")
        if not block:
            continue
        assert block.startswith("data: "), block
        events.append(block[len("data: "):])
    return events


def test_chat_completion_stream_sse(srv):
    r = srv.post("/v1/chat/completions", dict(CHAT, stream=True))
    assert r.status == 200, r.body[:300]
    assert r.header("Content-Type").startswith("text/event-stream")
    events = parse_sse(r.body)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) >= 3
    ids = {c["id"] for c in chunks}
    assert len(ids) == 1
    for c in chunks:
        assert c["object"] == "chat.completion.chunk"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    # same request without streaming gives the same text
    full = srv.post("/v1/chat/completions", CHAT).json()
    assert full["choices"][0]["message"]["content"] == text


def test_completions(srv):
    r = srv.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 8})
    assert r.status == 200, r.body[:300]
    c = r.json()
    assert c["object"] == "text_completion"
    assert isinstance(c["choices"][0]["text"], str) and c["choices"][0]["text"]
    assert c["usage"]["total_tokens"] == c["usage"]["prompt_tokens"] + \
        c["usage"]["completion_tokens"]
    r = srv.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 8,
                                     "stream": True})
    assert r.status == 200
    events = parse_sse(r.body)
    assert events[-1] == "[DONE]" and len(events) >= 3


def test_tokenize_detokenize_round_trip(srv):
    text = "Hello, mediad world!"
    r = srv.post("/v1/tokenize", {"prompt": text})
    assert r.status == 200, r.body[:300]
    t = r.json()
    tokens = t["tokens"]
    assert tokens and all(isinstance(x, int) for x in tokens)
    assert t["count"] == len(tokens)
    r = srv.post("/v1/detokenize", {"tokens": tokens})
    assert r.status == 200, r.body[:300]
    assert r.json()["prompt"] == text
    assert_json_error(srv.post("/v1/detokenize", {"tokens": [1, -2]}), 422, param="tokens[1]")


def test_embeddings_shape(srv):
    r = srv.post("/v1/embeddings", {"input": ["first text", "second text"],
                                    "model": "mediad-mock"})
    assert r.status == 200, r.body[:300]
    e = r.json()
    assert e["object"] == "list"
    assert e["model"] == "mediad-mock"
    assert [d["index"] for d in e["data"]] == [0, 1]
    dims = {len(d["embedding"]) for d in e["data"]}
    assert len(dims) == 1 and dims.pop() > 0
    for d in e["data"]:
        assert d["object"] == "embedding"
        assert all(isinstance(x, float) for x in d["embedding"])
    assert e["data"][0]["embedding"] != e["data"][1]["embedding"]
    assert "prompt_tokens" in e["usage"] and "total_tokens" in e["usage"]
    # a single string is one embedding
    one = srv.post("/v1/embeddings", {"input": "first text"}).json()
    assert len(one["data"]) == 1
    assert one["data"][0]["embedding"] == e["data"][0]["embedding"]


# --- video jobs -------------------------------------------------------------

VIDEO = {"prompt": "a drifting cloud", "num_frames": 2, "width": 64, "height": 64,
         "num_inference_steps": 4}
JOB_KEYS = {"id", "job_type", "status", "created_at", "model", "request_parameters", "progress"}


def start_blocker(srv):
    """A long fine-tuning job that keeps the single worker busy; returns its id."""
    r = srv.post("/v1/jobs", {"model": "mediad-mock", "dataset": "blocker",
                              "hyperparameters": {"n_steps": 100000}}, headers=ORG)
    assert r.status == 201, r.body[:300]
    jid = r.json()["id"]
    srv.wait_for(lambda: srv.get("/v1/jobs/" + jid, headers=dict(AUTH, **ORG))
                 .json()["status"] == "in_progress", 15, what="blocker job running")
    return jid


def test_video_job_lifecycle(srv):
    blocker = start_blocker(srv)
    try:
        r = srv.post("/v1/videos/generations", dict(VIDEO, seed=9))
        assert r.status == 202, r.body[:300]
        job = r.json()
        assert set(job) >= JOB_KEYS
        assert job["job_type"] == "video"
        assert job["status"] in ("queued", "in_progress")
        assert 0 <= job["progress"] <= 1
        assert job["request_parameters"]["prompt"] == VIDEO["prompt"]
        jid = job["id"]
        # not done yet (the worker is busy): no download
        r = srv.get("/v1/videos/generations/%s/download" % jid, headers=AUTH)
        assert_json_error(r, 404)
        # a second job cancelled before it runs: 200 cancelled, then 409
        r = srv.post("/v1/videos/generations", dict(VIDEO, prompt="to be cancelled"))
        assert r.status == 202
        cid = r.json()["id"]
        r = srv.post("/v1/videos/generations/%s/cancel" % cid)
        assert r.status == 200, r.body[:300]
        assert r.json()["status"] == "cancelled"
        assert_json_error(srv.post("/v1/videos/generations/%s/cancel" % cid), 409)
    finally:
        r = srv.post("/v1/jobs/%s/cancel" % blocker, headers=ORG)
        assert r.status == 200, r.body[:300]
    assert r.json()["status"] == "cancelled"

    def done():
        j = srv.get("/v1/videos/generations/" + jid, headers=AUTH).json()
        return j if j["status"] in ("completed", "failed", "cancelled") else None

    j = srv.wait_for(done, 30, what="video job finished")
    assert j["status"] == "completed", j
    assert j["progress"] == 1
    assert j["completed_at"] >= j["created_at"]
    r = srv.get("/v1/videos/generations/%s/download" % jid, headers=AUTH)
    assert r.status == 200
    assert r.header("Content-Type") == "video/mp4"
    assert r.body[4:8] == b"ftyp"
    assert b"moov" in r.body or b"moof" in r.body
    # the list has both jobs
    r = srv.get("/v1/videos/jobs", headers=AUTH)
    assert r.status == 200
    listed = {x["id"]: x for x in r.json()}
    assert listed[jid]["status"] == "completed"
    assert listed[cid]["status"] == "cancelled"
    # cancel of a finished job is a conflict
    assert_json_error(srv.post("/v1/videos/generations/%s/cancel" % jid), 409)


def test_video_unknown_job(srv):
    for path in ("/v1/videos/generations/job-doesnotexist",
                 "/v1/videos/generations/job-doesnotexist/download"):
        assert_json_error(srv.get(path, headers=AUTH), 404)
    assert_json_error(srv.post("/v1/videos/generations/job-doesnotexist/cancel"), 404)
    assert_json_error(srv.post("/v1/videos/generations", {"num_frames": 2}), 422,
                      param="prompt")


# --- fine-tuning jobs ---------------------------------------------------------

TRAIN = {"model": "mediad-mock", "dataset": "my-dataset", "hyperparameters": {"n_steps": 8}}


def test_training_create_requires_organization(srv):
    r = srv.post("/v1/jobs", TRAIN)
    assert_json_error(r, 401, words=["X-TT-Organization"])
    r = srv.post("/v1/jobs", TRAIN, headers={"X-TT-Organization": ""})
    assert_json_error(r, 401, words=["X-TT-Organization"])


def test_training_routes_require_organization(srv):
    for path in ("/v1/jobs", "/v1/jobs/job-x", "/v1/jobs/job-x/metrics", "/v1/jobs/job-x/logs",
                 "/v1/jobs/job-x/checkpoints", "/v1/catalog"):
        assert_json_error(srv.get(path, headers=AUTH), 401, words=["X-TT-Organization"])
    assert_json_error(srv.post("/v1/jobs/job-x/cancel"), 401, words=["X-TT-Organization"])


def test_training_job_lifecycle_and_isolation(srv):
    r = srv.post("/v1/jobs", TRAIN, headers=ORG)
    assert r.status == 201, r.body[:300]
    job = r.json()
    assert set(job) >= JOB_KEYS
    assert job["job_type"] == "training"
    assert job["status"] in ("queued", "in_progress")
    jid = job["id"]
    h = dict(AUTH, **ORG)

    def done():
        j = srv.get("/v1/jobs/" + jid, headers=h).json()
        return j if j["status"] in ("completed", "failed", "cancelled") else None

    j = srv.wait_for(done, 30, what="training job finished")
    assert j["status"] == "completed", j
    assert j["progress"] == 1
    for sub in ("metrics", "logs", "checkpoints"):
        r = srv.get("/v1/jobs/%s/%s" % (jid, sub), headers=h)
        assert r.status == 200, (sub, r.body[:300])
        lst = r.json()
        assert lst["object"] == "list"
        assert lst["data"], (sub, lst)
    metrics = srv.get("/v1/jobs/%s/metrics" % jid, headers=h).json()["data"]
    assert [m["step"] for m in metrics] == list(range(1, 9))
    assert all(isinstance(m["loss"], float) for m in metrics)
    assert any(x["id"] == jid for x in srv.get("/v1/jobs", headers=h).json()["data"])
    # another organization sees nothing of it
    oh = dict(AUTH, **OTHER_ORG)
    for path in ("/v1/jobs/" + jid, "/v1/jobs/%s/metrics" % jid, "/v1/jobs/%s/logs" % jid,
                 "/v1/jobs/%s/checkpoints" % jid):
        assert_json_error(srv.get(path, headers=oh), 404)
    assert_json_error(srv.post("/v1/jobs/%s/cancel" % jid, headers=OTHER_ORG), 404)
    assert all(x["id"] != jid for x in srv.get("/v1/jobs", headers=oh).json()["data"])
    # finished: cancel is a conflict for the owner
    assert_json_error(srv.post("/v1/jobs/%s/cancel" % jid, headers=ORG), 409)


def test_catalog(srv):
    r = srv.get("/v1/catalog", headers=dict(AUTH, **ORG))
    assert r.status == 200, r.body[:300]
    c = r.json()
    assert c["object"] == "list"
    assert c["data"] and all(isinstance(m["id"], str) and m["id"] for m in c["data"])


def test_models(srv):
    r = srv.get("/v1/models")
    assert r.status == 200
    m = r.json()
    assert m["object"] == "list"
    assert len(m["data"]) >= 1
    d = m["data"][0]
    assert isinstance(d["id"], str) and d["id"]
    assert d["object"] == "model"
    assert isinstance(d["created"], int)
    assert d["owned_by"] == "mediad"


# --- conventions --------------------------------------------------------------

def sample_responses(srv, headers=None):
    """A mix of successes and errors of every kind."""
    h = dict(headers or {})
    ah = dict(AUTH, **h)
    return {
        "health": srv.get("/health", headers=h),
        "liveness": srv.get("/tt-liveness", headers=h),
        "livez": srv.get("/livez", headers=h),
        "metrics": srv.get("/metrics", headers=h),
        "models": srv.get("/v1/models", headers=h),
        "image": srv.post("/v1/images/generations", {"prompt": "x", "width": 64, "height": 64,
                                                     "num_inference_steps": 4}, headers=h),
        "stream": srv.post("/v1/chat/completions", dict(CHAT, stream=True), headers=h),
        "speech": srv.post("/v1/audio/speech", {"input": "hi"}, headers=h),
        "401": srv.post("/v1/images/generations", {"prompt": "x"}, auth=False, headers=h),
        "404": srv.get("/no/such/path", headers=h),
        "405": srv.request("DELETE", "/health", headers=h),
        "400": srv.post("/v1/images/generations", raw=b"{not json", headers=h),
        "422": srv.post("/v1/images/generations", {"prompt": ""}, headers=h),
        "job404": srv.get("/v1/videos/generations/job-nope", headers=ah),
    }


def test_every_response_has_a_request_id(srv):
    seen = set()
    responses = sample_responses(srv)
    for name, r in responses.items():
        rid = r.header("X-Request-Id")
        assert rid, (name, r.status, r.headers)
        assert re.fullmatch(r"[A-Za-z0-9._:-]{8,64}", rid), (name, rid)
        seen.add(rid)
    assert len(seen) == len(responses), "request ids must be unique"


def test_client_request_id_is_echoed(srv):
    rid = "client-" + uuid.uuid4().hex
    for name, r in sample_responses(srv, {"X-Request-Id": rid}).items():
        assert r.header("X-Request-Id") == rid, (name, r.status, r.headers)
    # logs carry it
    srv.wait_for(lambda: srv.log_lines(request_id=rid), 5,
                 what="a log line with the client's request id")


def test_malicious_request_id_not_echoed(srv):
    for bad in ("x" * 5000, "a" * 65, "abc def", "<script>alert(1)</script>", "id;rm -rf",
                "caf\u00e9".encode("utf-8").decode("latin-1")):
        r = srv.get("/health", headers={"X-Request-Id": bad})
        assert r.status == 200
        rid = r.header("X-Request-Id")
        assert rid and rid != bad and len(rid) <= 64, (bad[:20], rid)
    # a header folded over two lines (obs-fold) tries to inject a header
    req = (b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           b"X-Request-Id: evil\r\n Set-Cookie: pwned=1\r\n\r\n")
    status, headers, _ = raw_http(srv.port, req)
    assert status in (200, 400), status
    assert not hdr(headers, "Set-Cookie"), headers
    rids = hdr(headers, "X-Request-Id")
    assert rids and all("\r" not in v and "\n" not in v and "Set-Cookie" not in v
                        for v in rids), headers
    # a bare CR inside the value
    req = (b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           b"X-Request-Id: evil\rSet-Cookie: pwned=1\r\n\r\n")
    status, headers, _ = raw_http(srv.port, req)
    assert not hdr(headers, "Set-Cookie"), headers
    for v in hdr(headers, "X-Request-Id"):
        assert "Set-Cookie" not in v and "\r" not in v
    valid_image_ok(srv)


HEALTH_PATHS = ["/health", "/readyz", "/v2/health/ready", "/livez", "/v2/health/live",
                "/startupz", "/tt-liveness"]


def test_health_bodies_compact_json(srv):
    for path in HEALTH_PATHS + ["/v1/models"]:
        r = srv.get(path)
        assert r.status == 200, (path, r.status, r.body)
        assert r.header("Content-Type") == "application/json", (path, r.headers)
        text = r.body.decode()
        json.loads(text)
        assert not re.search(r"\s", strip_json_strings(text)), (path, text)
    assert b'"model_ready":true' in srv.get("/health").body
    assert b'"status":"healthy"' in srv.get("/health").body


def test_json_content_type_on_json_responses(srv):
    for name, r in sample_responses(srv).items():
        if name in ("metrics", "stream", "speech"):
            continue
        assert r.header("Content-Type") == "application/json", (name, r.headers)
        json.loads(r.body)


LEGACY = [
    ("/image/generations", "/v1/images/generations",
     {"prompt": "legacy", "seed": 11, "width": 64, "height": 64, "num_inference_steps": 4,
      "image_return_format": "PNG"}),
    ("/audio/speech", "/v1/audio/speech", {"input": "legacy speech"}),
    ("/audio/transcriptions", "/v1/audio/transcriptions", {"file": WAV_B64}),
    ("/audio/translations", "/v1/audio/translations", {"file": WAV_B64}),
]


def check_legacy_headers(r, successor):
    assert r.header("Deprecation") == "true", r.headers
    assert r.header("Sunset"), r.headers
    link = r.header("Link")
    assert link and "<%s>" % successor in link and 'rel="successor-version"' in link, link


@pytest.mark.parametrize("legacy,v1,body", LEGACY, ids=[x[0] for x in LEGACY])
def test_legacy_alias_answers_like_v1(srv, legacy, v1, body):
    a = srv.post(legacy, body)
    b = srv.post(v1, body)
    assert a.status == b.status == 200, (a.status, a.body[:300])
    assert a.header("Content-Type") == b.header("Content-Type")
    check_legacy_headers(a, v1)
    assert b.header("Deprecation") is None and b.header("Link") is None
    if v1 == "/v1/images/generations":
        assert a.json()["images"] == b.json()["images"]
    elif v1 == "/v1/audio/speech":
        assert a.body == b.body
    else:
        assert a.json() == b.json()
    # errors on the legacy path carry the headers too
    e = srv.post(legacy, {"unrelated": 1})
    assert e.status == 422
    check_legacy_headers(e, v1)


def test_legacy_video_aliases(srv):
    r = srv.post("/video/generations", VIDEO)
    assert r.status == 202, r.body[:300]
    check_legacy_headers(r, "/v1/videos/generations")
    jid = r.json()["id"]
    r = srv.get("/video/generations/" + jid, headers=AUTH)
    assert r.status == 200 and r.json()["id"] == jid
    check_legacy_headers(r, "/v1/videos/generations/{id}")
    r = srv.get("/video/jobs", headers=AUTH)
    assert r.status == 200 and any(x["id"] == jid for x in r.json())
    check_legacy_headers(r, "/v1/videos/jobs")
    srv.wait_for(lambda: srv.get("/v1/videos/generations/" + jid, headers=AUTH)
                 .json()["status"] == "completed", 30, what="legacy video job completed")
    r = srv.get("/video/generations/%s/download" % jid, headers=AUTH)
    assert r.status == 200 and r.body[4:8] == b"ftyp"
    check_legacy_headers(r, "/v1/videos/generations/{id}/download")


# --- auth ---------------------------------------------------------------------

AUTH_ROUTES = [
    ("POST", "/v1/images/generations", {"prompt": "x"}),
    ("POST", "/image/generations", {"prompt": "x"}),
    ("POST", "/v1/audio/transcriptions", {"file": WAV_B64}),
    ("POST", "/audio/transcriptions", {"file": WAV_B64}),
    ("POST", "/v1/audio/translations", {"file": WAV_B64}),
    ("POST", "/v1/audio/speech", {"input": "x"}),
    ("POST", "/audio/speech", {"input": "x"}),
    ("POST", "/v1/videos/generations", VIDEO),
    ("POST", "/video/generations", VIDEO),
    ("GET", "/v1/videos/generations/job-x", None),
    ("GET", "/v1/videos/generations/job-x/download", None),
    ("POST", "/v1/videos/generations/job-x/cancel", None),
    ("GET", "/v1/videos/jobs", None),
    ("GET", "/video/jobs", None),
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/completions", {"prompt": "x"}),
    ("POST", "/v1/tokenize", {"prompt": "x"}),
    ("POST", "/v1/detokenize", {"tokens": [65]}),
    ("POST", "/v1/embeddings", {"input": "x"}),
    ("GET", "/v1/catalog", None),
    ("POST", "/v1/jobs", TRAIN),
    ("GET", "/v1/jobs", None),
    ("GET", "/v1/jobs/job-x", None),
    ("GET", "/v1/jobs/job-x/metrics", None),
    ("GET", "/v1/jobs/job-x/logs", None),
    ("GET", "/v1/jobs/job-x/checkpoints", None),
    ("POST", "/v1/jobs/job-x/cancel", None),
    ("POST", "/tt-reset-device?device_id=0", None),
    ("POST", "/tt-deep-reset", None),
    ("GET", "/v1/config", None),
]

BAD_CREDENTIALS = [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "test-key"},
                   {"Authorization": "Basic test-key"}, {"Authorization": "Bearer "},
                   {"Authorization": "Bearer test-key-and-more"}]


def test_auth_required_on_protected_routes(srv):
    pid = srv.worker_pid()
    for method, path, body in AUTH_ROUTES:
        for creds in BAD_CREDENTIALS:
            h = dict(creds, **ORG)
            r = srv.request(method, path, body=body, headers=h)
            b = assert_json_error(r, 401)
            assert b["detail"] == "Invalid or missing API Key", (method, path, b)
            assert r.header("X-Request-Id")
    # nothing behind the 401s ran: the maintenance routes did not restart the worker
    info = srv.liveness()["worker_info"]["0"]
    assert info["pid"] == pid and info["restart_count"] == 0, info
    assert srv.get("/health").status == 200
    # with the key the maintenance routes reach their handler
    assert_json_error(srv.post("/tt-reset-device"), 422, param="device_id")
    assert_json_error(srv.post("/tt-reset-device?device_id=nope"), 404)
    assert srv.get("/v1/config", headers=AUTH).status == 200


def test_public_routes_need_no_key(srv):
    for path in HEALTH_PATHS + ["/metrics", "/v1/models"]:
        for creds in ({}, {"Authorization": "Bearer wrong-key"}):
            r = srv.get(path, headers=creds)
            assert r.status == 200, (path, creds, r.status, r.body[:200])


def test_no_auth_turns_auth_off(server_factory):
    s = server_factory(MODEL_SERVICE="all", NO_AUTH="true")
    r = s.post("/v1/images/generations", {"prompt": "open", "width": 64, "height": 64,
                                          "num_inference_steps": 4}, auth=False)
    assert r.status == 200, r.body[:300]
    r = s.post("/v1/tokenize", {"prompt": "x"}, auth=False,
               headers={"Authorization": "Bearer wrong-key"})
    assert r.status == 200, r.body[:300]
    assert s.get("/v1/config").json()["NO_AUTH"] is True
    assert_json_error(s.post("/tt-reset-device", auth=False), 422, param="device_id")


def test_empty_api_key_does_not_open_the_server():
    """API_KEY="" with auth on must not let an empty bearer token in: either the
    binary refuses to start (naming API_KEY) or the empty token is a 401."""
    env = dict(FAST)
    env.update(API_KEY="", NO_AUTH="false")
    try:
        s = Server(env)
    except RuntimeError as e:  # refused to start
        assert "API_KEY" in str(e), e
        return
    try:
        s.wait_ready()
        for token in ("Bearer ", "Bearer    "):
            r = s.request("POST", "/v1/tokenize", body={"prompt": "x"},
                          headers={"Authorization": token})
            assert_json_error(r, 401)
    finally:
        stop_server(s)


# --- bad input ----------------------------------------------------------------

def _bad(body=None, raw=None):
    return {"body": body, "raw": raw}


BAD_INPUT = [
    ("bad-json", _bad(raw=b'{"prompt": "x",'), 400, None, ["JSON"]),
    ("empty-body", _bad(raw=b""), 400, None, ["JSON"]),
    ("array-body", _bad(body=[{"prompt": "x"}]), 400, None, ["object"]),
    ("string-body", _bad(body="a prompt"), 400, None, ["object"]),
    ("number-body", _bad(raw=b"42"), 400, None, ["object"]),
    ("null-body", _bad(raw=b"null"), 400, None, ["object"]),
    ("missing-prompt", _bad(body={"seed": 1}), 422, "prompt", ["prompt", "required"]),
    ("empty-prompt", _bad(body={"prompt": ""}), 422, "prompt", ["prompt"]),
    ("steps-3", _bad(body={"prompt": "x", "num_inference_steps": 3}), 422,
     "num_inference_steps", ["num_inference_steps", "4", "50"]),
    ("steps-51", _bad(body={"prompt": "x", "num_inference_steps": 51}), 422,
     "num_inference_steps", ["num_inference_steps", "4", "50"]),
    ("steps-float", _bad(body={"prompt": "x", "num_inference_steps": 4.5}), 422,
     "num_inference_steps", ["num_inference_steps"]),
    ("format", _bad(body={"prompt": "x", "image_return_format": "GIF"}), 422,
     "image_return_format", ["image_return_format", "JPEG", "PNG"]),
    ("guidance-type", _bad(body={"prompt": "x", "guidance_scale": "high"}), 422,
     "guidance_scale", ["guidance_scale", "number"]),
    ("width", _bad(body={"prompt": "x", "width": 100}), 422, "width", ["width", "16"]),
    ("size", _bad(body={"prompt": "x", "size": "big"}), 422, "size", ["size"]),
    ("seed", _bad(body={"prompt": "x", "seed": -1}), 422, "seed", ["seed"]),
    ("n", _bad(body={"prompt": "x", "n": 5}), 422, "n", ["n", "4"]),
]


@pytest.mark.parametrize("case,req,status,param,words", BAD_INPUT,
                         ids=[c[0] for c in BAD_INPUT])
def test_bad_image_input(srv, case, req, status, param, words):
    r = srv.post("/v1/images/generations", **req)
    assert_json_error(r, status, param=param, words=words)
    valid_image_ok(srv)


@pytest.mark.parametrize("path,body,param", [
    ("/v1/audio/transcriptions", {"file": "not base64!!"}, "file"),
    ("/v1/audio/transcriptions", {"response_format": "json"}, "file"),
    ("/v1/audio/transcriptions", {"file": WAV_B64, "response_format": "srt"}, "response_format"),
    ("/v1/audio/speech", {"input": "x", "response_format": "aiff"}, "response_format"),
    ("/v1/audio/speech", {"input": "x", "speed": 10}, "speed"),
    ("/v1/chat/completions", {"messages": []}, "messages"),
    ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]},
     "messages[0].role"),
    ("/v1/chat/completions", dict(CHAT, temperature=3), "temperature"),
    ("/v1/completions", {"max_tokens": 3}, "prompt"),
    ("/v1/embeddings", {"input": []}, "input"),
    ("/v1/jobs", {"model": "m"}, "dataset"),
    ("/v1/videos/generations", dict(VIDEO, num_frames=0), "num_frames"),
])
def test_bad_input_other_routes(srv, path, body, param):
    r = srv.post(path, body, headers=ORG)
    b = assert_json_error(r, 422, param=param)
    assert param.split("[")[0] in b["error"]["message"], b
    valid_image_ok(srv)


def test_oversized_body_413(server_factory):
    s = server_factory(MODEL_SERVICE="all", MAX_REQUEST_BODY_BYTES="2048")
    big = {"prompt": "x" * 10000}
    r = s.post("/v1/images/generations", big)
    assert_json_error(r, 413, words=["2048"])
    valid_image_ok(s)
    # same without a Content-Length (chunked): 413 as well
    payload = json.dumps(big).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 1000]), payload[i:i + 1000])
                       for i in range(0, len(payload), 1000)) + b"0\r\n\r\n"
    req = (b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
           b"Authorization: Bearer test-key\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" + chunked)
    status, headers, body = raw_http(s.port, req)
    assert status == 413, (status, body[:300])
    assert hdr(headers, "X-Request-Id")
    # a body just under the limit is accepted
    r = s.post("/v1/images/generations", {"prompt": "y" * 1500, "width": 64, "height": 64,
                                          "num_inference_steps": 4})
    assert r.status == 200, r.body[:300]
    valid_image_ok(s)


@pytest.mark.parametrize("method,path,allowed", [
    ("GET", "/v1/images/generations", {"POST"}),
    ("PUT", "/v1/audio/speech", {"POST"}),
    ("DELETE", "/image/generations", {"POST"}),
    ("POST", "/health", {"GET"}),
    ("POST", "/tt-liveness", {"GET"}),
    ("POST", "/metrics", {"GET"}),
    ("GET", "/tt-deep-reset", {"POST"}),
    ("DELETE", "/v1/jobs", {"GET", "POST"}),
    ("DELETE", "/v1/videos/generations/job-x", {"GET"}),
])
def test_wrong_method_405_with_allow(srv, method, path, allowed):
    r = srv.request(method, path, headers=dict(AUTH, **ORG))
    assert_json_error(r, 405)
    allow = {m.strip() for m in (r.header("Allow") or "").split(",") if m.strip()}
    assert allowed <= allow, (path, allow)
    assert method not in allow
    valid_image_ok(srv)


def test_unknown_path_404_json(srv):
    for path in ("/v1/nothing", "/v1/images/generations/extra", "/", "/v3/health/ready"):
        r = srv.request("POST", path, headers=AUTH)
        assert_json_error(r, 404)
        r = srv.get(path)
        assert_json_error(r, 404)
    valid_image_ok(srv)


# --- metrics ------------------------------------------------------------------

def metric_series(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        out[name] = float(value)
    return out


def test_metrics_prometheus_text(srv):
    valid_image_ok(srv)
    assert srv.post("/v1/images/generations", {"prompt": ""}).status == 422
    srv.post("/v1/chat/completions", dict(CHAT, stream=True))
    srv.get("/nope")
    r = srv.get("/metrics")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/plain")
    assert "version=0.0.4" in r.header("Content-Type")
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=r.body, capture_output=True,
                       timeout=60)
    assert p.returncode == 0 and not p.stdout and not p.stderr, (p.returncode, p.stdout,
                                                                  p.stderr)
    text = r.body.decode()
    series = metric_series(text)
    assert series['mediad_requests_total{route="/v1/images/generations",code="200"}'] >= 1
    assert series['mediad_requests_total{route="/v1/images/generations",code="422"}'] >= 1
    assert "mediad_queue_depth" in series
    assert series['mediad_worker_ready{worker="0"}'] == 1
    canary = {k: v for k, v in series.items() if k.startswith("tt_canary_state{")}
    assert canary, text[:2000]
    assert sum(v for k, v in canary.items() if 'worker="0"' in k) == 1  # one-hot
    assert any(k.startswith("mediad_request_duration_seconds_bucket{") for k in series)


def test_debug_faults_404_when_disabled(srv):
    r = srv.post("/debug/faults", {"worker": "0", "fault": "crash"})
    assert_json_error(r, 404)
    r = srv.request("DELETE", "/debug/faults", headers=AUTH)
    assert_json_error(r, 404)
    assert srv.liveness()["worker_info"]["0"]["restart_count"] == 0
    valid_image_ok(srv)


def test_debug_faults_other_methods_404_when_disabled(srv):
    """With fault injection off the route does not exist: no 405 revealing it."""
    for method in ("GET", "PUT"):
        r = srv.request(method, "/debug/faults", headers=AUTH)
        assert_json_error(r, 404)
        assert r.header("Allow") is None
