"""Black-box tests of readiness and the process lifecycle (HEALTH.md sections
5, 6 and 9): warming up, ready, queue full, worker crashes, the restart
budget, SIGTERM drain, and startup configuration errors. One server per
scenario, since each needs its own settings."""
import base64
import json
import math
import os
import re
import signal
import tempfile
import threading
import time

import pytest

from harness import AUTH, Call, connect, run_bin, strip_json_strings, wav_bytes

ORG = {"X-TT-Organization": "org-a"}


def _wav_b64(seconds=0.5, rate=16000):
    n = int(seconds * rate)
    return base64.b64encode(wav_bytes((int(6000 * math.sin(i / 5.0)) for i in range(n)),
                                      rate)).decode()


WAV_B64 = _wav_b64()
SMALL_IMAGE = {"prompt": "a small test image", "width": 64, "height": 64,
               "num_inference_steps": 4}
VIDEO = {"prompt": "a small test video", "num_frames": 2, "width": 64, "height": 64,
         "num_inference_steps": 4}

# Every inference (POST) route of src/router.c with MODEL_SERVICE=all, legacy
# aliases included, with a valid body and the status it answers once ready.
INFERENCE_ROUTES = [
    ("/v1/images/generations", SMALL_IMAGE, 200),
    ("/image/generations", SMALL_IMAGE, 200),
    ("/v1/audio/transcriptions", {"file": WAV_B64}, 200),
    ("/audio/transcriptions", {"file": WAV_B64}, 200),
    ("/v1/audio/translations", {"file": WAV_B64}, 200),
    ("/audio/translations", {"file": WAV_B64}, 200),
    ("/v1/audio/speech", {"input": "hello"}, 200),
    ("/audio/speech", {"input": "hello"}, 200),
    ("/v1/videos/generations", VIDEO, 202),
    ("/video/generations", VIDEO, 202),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}],
                              "max_tokens": 4}, 200),
    ("/v1/completions", {"prompt": "hi", "max_tokens": 4}, 200),
    ("/v1/tokenize", {"prompt": "hi"}, 200),
    ("/v1/detokenize", {"tokens": [104, 105]}, 200),
    ("/v1/embeddings", {"input": "hi"}, 200),
    ("/v1/jobs", {"model": "mediad-mock", "dataset": "d", "hyperparameters": {"n_steps": 2}},
     201),
]

READINESS = ["/health", "/readyz", "/v2/health/ready"]
LIVENESS = ["/livez", "/v2/health/live"]


def assert_503_json(r, what=""):
    assert r.status == 503, (what, r.status, r.body[:300])
    assert (r.header("Content-Type") or "").startswith("application/json"), (what, r.headers)
    body = r.json()
    assert r.header("Retry-After"), (what, r.headers)
    assert r.header("X-Request-Id"), (what, r.headers)
    # compact JSON: no whitespace outside strings
    assert not re.search(r"\s", strip_json_strings(r.body.decode())), \
        (what, r.body)
    return body


def error_text(body):
    e = body.get("error")
    if isinstance(e, dict):
        return e.get("message", "")
    return e or ""


def proc_gone(pid):
    """The process no longer exists (or is a zombie waiting for a reaper)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_all_ready(s, n, timeout=20):
    """/health 200 needs only MIN_READY_WORKERS; wait for all n workers."""
    s.wait_for(lambda: s.get("/health").json().get("ready_workers") == n, timeout,
               what="%d workers ready" % n)


def in_flight(s, wid="0"):
    return s.liveness()["worker_info"][wid]["in_flight"]


# --- warming up and ready -------------------------------------------------------

def test_warming_up_then_ready(server_factory):
    s = server_factory(wait=False, MODEL_SERVICE="all", MOCK_WARMUP_SECONDS="4")
    for path in READINESS:
        r = s.get(path)
        body = assert_503_json(r, path)
        assert error_text(body) == "model warming up", (path, body)
    r = s.get("/tt-liveness")
    body = assert_503_json(r, "/tt-liveness")
    assert body["status"] == "alive"
    assert body["model_ready"] is False
    assert isinstance(body["worker_info"], dict) and set(body["worker_info"]) == {"0"}
    assert body["worker_info"]["0"]["is_ready"] is False
    for path in LIVENESS:
        r = s.get(path)
        assert r.status == 200, (path, r.status, r.body)
    r = s.get("/startupz")
    body = assert_503_json(r, "/startupz")
    assert body["phase"] in ("starting_workers", "warming_up"), body
    assert isinstance(body["elapsed_s"], (int, float)) and body["elapsed_s"] >= 0
    for path, req, _ in INFERENCE_ROUTES:
        r = s.post(path, req, headers=ORG)
        assert r.status != 405 and r.status != 200, (path, r.status)
        body = assert_503_json(r, path)
        assert body["error"]["code"] == 503
        assert error_text(body), (path, body)
    # the order of checks: method and path, then auth, then serving
    r = s.get("/v1/images/generations", headers=AUTH)
    assert r.status == 405 and "POST" in r.header("Allow"), (r.status, r.headers)
    assert s.post("/v1/no-such-route", SMALL_IMAGE).status == 404
    r = s.post("/v1/images/generations", SMALL_IMAGE, auth=False)
    assert r.status == 401, (r.status, r.body[:200])
    r = s.post("/v1/images/generations", raw=b"{not json")
    assert_503_json(r, "bad JSON while warming up")
    # the checks above really ran during warmup (else this test proves nothing)
    assert s.get("/startupz").status == 503, "warmup ended before the checks finished"

    s.wait_ready(timeout=20)
    for path in READINESS:
        r = s.get(path)
        assert r.status == 200, (path, r.body)
        assert r.json()["status"] == "healthy"
    r = s.get("/startupz")
    assert r.status == 200, r.body
    live = s.get("/tt-liveness")
    assert live.status == 200
    body = live.json()
    assert body["model_ready"] is True
    info = body["worker_info"]
    assert isinstance(info, dict) and set(info) == {"0"}
    w = info["0"]
    assert w["worker_id"] == "0"
    assert w["is_alive"] is True and w["is_ready"] is True
    assert w["restart_count"] == 0 and w["error_count"] == 0
    assert isinstance(w["pid"], int) and w["pid"] > 0 and not proc_gone(w["pid"])
    for path, req, status in INFERENCE_ROUTES:
        r = s.post(path, req, headers=ORG)
        assert r.status == status, (path, r.status, r.body[:300])


def test_ready_with_two_workers(server_factory):
    s = server_factory(DEVICE_IDS="(0),(1)")
    wait_all_ready(s, 2)
    body = s.get("/tt-liveness").json()
    info = body["worker_info"]
    assert set(info) == {"0", "1"}
    pids = set()
    for wid, w in info.items():
        assert w["worker_id"] == wid
        assert w["is_ready"] is True and w["is_alive"] is True
        assert w["restart_count"] == 0 and w["error_count"] == 0
        pids.add(w["pid"])
    assert len(pids) == 2
    assert s.get("/health").json()["ready_workers"] == 2


# --- queue full ---------------------------------------------------------------

def test_queue_full_429_health_stays_200(server_factory):
    s = server_factory(MAX_QUEUE_SIZE="2", MOCK_LATENCY_MS="1500")
    n = 6
    results = [None] * n
    start = threading.Barrier(n + 1)

    def client(i):
        start.wait()
        results[i] = s.post("/v1/images/generations", dict(SMALL_IMAGE, seed=i), timeout=60)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    start.wait()
    health = []
    while any(t.is_alive() for t in threads):
        health.append(s.get("/health").status)
        time.sleep(0.05)
    for t in threads:
        t.join(60)
    statuses = sorted(r.status for r in results)
    assert set(statuses) <= {200, 429}, statuses
    rejected = [r for r in results if r.status == 429]
    admitted = [r for r in results if r.status == 200]
    assert rejected, statuses
    assert admitted, statuses
    for r in rejected:
        assert r.header("X-Request-Id")
        b = r.json()
        assert b["error"]["code"] == 429
        assert "queue" in b["error"]["message"].lower()
    for r in admitted:
        assert r.json()["images"]
    assert health and all(h == 200 for h in health), health
    # once the queue has drained, requests are admitted again
    r = s.post("/v1/images/generations", SMALL_IMAGE, timeout=30)
    assert r.status == 200


def read_status(sk, timeout=30):
    sk.settimeout(timeout)
    data = b""
    while True:
        b = sk.recv(65536)
        if not b:
            break
        data += b
    sk.close()
    return int(data.split(b" ", 2)[1]), data


def test_queue_bound_counts_waiting_requests_in_a_burst(server_factory):
    """Requests that arrive together (one event-loop pass) must be admitted up
    to the same bound as requests arriving one by one: a 429 only when
    MAX_QUEUE_SIZE requests are really waiting."""
    s = server_factory(MAX_QUEUE_SIZE="2", MOCK_LATENCY_MS="1500")
    body = json.dumps(SMALL_IMAGE).encode()
    req = (b"POST /v1/images/generations HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
           b"Authorization: Bearer test-key\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    socks = [connect(s, timeout=30) for _ in range(6)]
    s.get("/health")  # the connections above are accepted by now
    for sk in socks:
        sk.sendall(req)
    readers = [Call(lambda sk=sk: read_status(sk), start=False) for sk in socks]
    for t in readers:
        t.start()

    def statuses():
        return [t.result[0] for t in readers if t.result]

    s.wait_for(lambda: 429 in statuses(), 10, what="a 429 for the burst")
    live = s.liveness()
    assert 200 not in statuses(), "the check ran too late (a request completed)"
    # the 429s were right only if the queue is really full now
    assert live["queue_size"] == 2, (live["queue_size"], live["worker_info"]["0"]["in_flight"],
                                     statuses())
    # while the queue is full: a bad body is still a 422 (validation comes before
    # admission), a valid one a 429
    bad = s.post("/v1/images/generations", {"prompt": ""})
    extra = s.post("/v1/images/generations", SMALL_IMAGE)
    assert s.liveness()["queue_size"] == 2, "queue drained before the checks ran"
    assert bad.status == 422, bad.body[:300]
    assert extra.status == 429, extra.body[:300]
    results = [t.get(60)[0] for t in readers]
    assert results.count(200) >= 3, results  # the idle worker takes one, two wait


# --- worker crash ---------------------------------------------------------------

def test_sigkill_worker_with_request_in_flight(server_factory):
    # a long warmup keeps the restarted worker unready for a while
    s = server_factory(MOCK_LATENCY_MS="3000", MOCK_WARMUP_SECONDS="1.5")
    pid = s.worker_pid()
    req = Call(lambda: s.post("/v1/images/generations", SMALL_IMAGE, timeout=60), start=False)
    req.start()
    s.wait_for(lambda: in_flight(s) == 1, 10, what="request in flight")
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    r = req.get()
    # failed at once, not after the 3 s the request would have taken
    assert req.done_at - killed_at < 2.0, req.done_at - killed_at
    body = assert_503_json(r, "in-flight request on a killed worker")
    assert body["error"]["code"] == 503
    assert "worker" in error_text(body).lower(), body
    # the only worker is restarting: not serving
    r = s.get("/health")
    body = assert_503_json(r, "/health while the worker restarts")
    assert error_text(body).startswith("no workers are ready"), body
    assert_503_json(s.post("/v1/images/generations", SMALL_IMAGE), "inference while restarting")
    assert s.get("/livez").status == 200

    def restarted():
        w = s.liveness()["worker_info"]["0"]
        return w if w["is_ready"] and w["pid"] != pid else None

    w = s.wait_for(restarted, 20, what="worker restarted")
    assert w["restart_count"] == 1, w
    assert proc_gone(pid)
    s.wait_ready(timeout=20)
    r = s.post("/v1/images/generations", SMALL_IMAGE, timeout=30)
    assert r.status == 200, r.body[:300]


def test_sigkill_one_of_two_workers_other_keeps_serving(server_factory):
    s = server_factory(DEVICE_IDS="(0),(1)", MIN_READY_WORKERS="1", MOCK_LATENCY_MS="20")
    wait_all_ready(s, 2)
    pid0 = s.worker_pid("0")
    stop = threading.Event()
    n_clients = 2
    outcomes = [[] for _ in range(n_clients)]
    health = []

    def client(i):
        while not stop.is_set():
            r = s.post("/v1/images/generations", SMALL_IMAGE, timeout=30)
            outcomes[i].append((r.status, r.body[:200]))

    def prober():
        while not stop.is_set():
            health.append(s.get("/health").status)
            time.sleep(0.02)

    threads = [threading.Thread(target=client, args=(i,), daemon=True)
               for i in range(n_clients)]
    threads.append(threading.Thread(target=prober, daemon=True))
    for t in threads:
        t.start()
    try:
        s.wait_for(lambda: all(len(o) >= 5 for o in outcomes), 20, what="traffic flowing")
        os.kill(pid0, signal.SIGKILL)
        before = [len(o) for o in outcomes]
        # traffic keeps flowing while worker 0 is down and restarting
        s.wait_for(lambda: all(len(o) >= b + 10 for o, b in zip(outcomes, before)), 20,
                   what="requests served after the kill")

        def restarted():
            w = s.liveness()["worker_info"]["0"]
            return w if w["is_ready"] and w["pid"] != pid0 else None

        w = s.wait_for(restarted, 20, what="worker 0 restarted")
        assert w["restart_count"] == 1
        mark = [len(o) for o in outcomes]
        s.wait_for(lambda: all(len(o) >= m + 5 for o, m in zip(outcomes, mark)), 20,
                   what="requests served after the restart")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    for i, o in enumerate(outcomes):
        failed = [x for x in o if x[0] != 200]
        # only the one request this client had on worker 0 may fail, with a 503
        assert len(failed) <= 1, (i, failed)
        assert all(st == 503 for st, _ in failed), failed
    assert health and all(h == 200 for h in health), [h for h in health if h != 200]
    info = s.liveness()["worker_info"]
    assert info["1"]["restart_count"] == 0 and info["1"]["is_ready"]


# --- SIGTERM drain -----------------------------------------------------------------

def test_sigterm_drains_and_exits_zero(server_factory):
    s = server_factory(DEVICE_IDS="(0),(1)", MOCK_LATENCY_MS="3000")
    wait_all_ready(s, 2)
    pids = [s.worker_pid("0"), s.worker_pid("1")]
    req = Call(lambda: s.post("/v1/images/generations", SMALL_IMAGE, timeout=60), start=False)
    req.start()
    s.wait_for(lambda: in_flight(s, "0") + in_flight(s, "1") == 1, 10,
               what="request in flight")
    s.proc.send_signal(signal.SIGTERM)

    def draining():
        r = s.get("/health")
        return r if r.status == 503 else None

    r = s.wait_for(draining, 2, interval=0.01, what="/health 503 after SIGTERM")
    assert req.is_alive(), "readiness must turn 503 at once, while requests are in flight"
    body = assert_503_json(r, "/health while draining")
    assert error_text(body) == "draining", body
    for path in READINESS[1:] + ["/tt-liveness"]:
        assert s.get(path).status == 503, path
    assert s.get("/livez").status == 200
    r = s.post("/v1/images/generations", SMALL_IMAGE)
    body = assert_503_json(r, "new request while draining")
    assert "draining" in error_text(body)
    assert req.is_alive()
    # the in-flight request completes normally
    r = req.get()
    assert r.status == 200, r.body[:300]
    assert r.json()["images"]
    assert s.proc.wait(15) == 0
    for pid in pids:
        deadline = time.monotonic() + 10
        while not proc_gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc_gone(pid), "worker %d still running after the supervisor exited" % pid


def test_sigterm_idle_exits_zero(server_factory):
    s = server_factory()
    pid = s.worker_pid()
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(15) == 0
    deadline = time.monotonic() + 10
    while not proc_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc_gone(pid)


# --- restart budget ----------------------------------------------------------------

def test_restart_budget_exhausted(server_factory):
    s = server_factory(MAX_WORKER_RESTART_COUNT="2")
    for n in (1, 2):
        pid = s.worker_pid()
        os.kill(pid, signal.SIGKILL)

        def restarted():
            w = s.liveness()["worker_info"]["0"]
            return w if w["is_ready"] and w["pid"] not in (0, pid) else None

        w = s.wait_for(restarted, 20, what="restart %d" % n)
        assert w["restart_count"] == n, w
        s.wait_ready(20)
    pid = s.worker_pid()
    os.kill(pid, signal.SIGKILL)

    def failed():
        w = s.liveness()["worker_info"]["0"]
        return w if w["state"] == "failed" else None

    w = s.wait_for(failed, 10, what="worker failed for good")
    assert "budget" in w.get("reason", ""), w
    assert w["is_ready"] is False and w["is_alive"] is False
    assert w["restart_count"] == 2
    r = s.get("/health")
    body = assert_503_json(r, "/health with the budget exhausted")
    assert error_text(body).startswith("no workers are ready"), body
    assert "budget" in error_text(body), body
    assert_503_json(s.get("/livez"), "/livez with the budget exhausted")
    assert s.get("/v2/health/live").status == 503
    live = s.get("/tt-liveness")
    assert live.status == 503 and live.json()["status"] == "alive"
    r = s.post("/v1/images/generations", SMALL_IMAGE)
    assert_503_json(r, "inference with no worker left")
    # it stays down: no further restart happens
    time.sleep(1.0)
    w = s.liveness()["worker_info"]["0"]
    assert w["state"] == "failed" and w["restart_count"] == 2 and w["pid"] in (0, None), w


# --- startup configuration ---------------------------------------------------------

@pytest.mark.parametrize("var,value,accepted", [
    ("SERVICE_PORT", "abc", ["0", "65535"]),
    ("SERVICE_PORT", "70000", ["0", "65535"]),
    ("MODEL_RUNNER", "foo", ["mock", "dit", "sphinx", "flite"]),
    ("NO_AUTH", "maybe", ["true", "false"]),
    ("CANARY_ON_DEAD", "explode", ["gate", "restart", "exit"]),
    ("CANARY_TICK_SECONDS", "fast", []),
    ("MAX_QUEUE_SIZE", "0", ["1"]),
])
def test_bad_setting_is_a_startup_error(var, value, accepted):
    t0 = time.monotonic()
    p = run_bin({var: value})
    assert time.monotonic() - t0 < 5, "a bad setting must fail at once"
    assert p.returncode != 0
    msg = (p.stderr + p.stdout).decode()
    assert var in msg, msg
    assert value in msg, msg
    for a in accepted:
        assert a in msg, (a, msg)
    assert "listening" not in msg


def test_bad_flag_is_a_startup_error():
    p = run_bin({}, args=["--max-queue-size", "lots"])
    assert p.returncode != 0
    msg = (p.stderr + p.stdout).decode()
    assert "max-queue-size" in msg or "MAX_QUEUE_SIZE" in msg, msg
    p = run_bin({}, args=["--no-such-flag"])
    assert p.returncode != 0
    assert "no-such-flag" in (p.stderr + p.stdout).decode()


def test_help_prints_settings_table():
    p = run_bin({}, args=["--help"])
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    for name in ("SERVICE_PORT", "MODEL_RUNNER", "MAX_QUEUE_SIZE", "MIN_READY_WORKERS",
                 "CANARY_DEAD_MISSES", "CANARY_GATE_READINESS", "MAX_WORKER_RESTART_COUNT",
                 "MOCK_WARMUP_SECONDS", "WORKER_WARMUP_TIMEOUT_SECONDS",
                 "--worker-warmup-timeout-seconds", "MOCK_WARMUP_HANG", "--max-queue-size",
                 ".env"):
        assert name in out, name


def test_dotenv_is_read_and_environment_wins(server_factory):
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, ".env"), "w") as f:
            f.write("# settings for this test\n"
                    "\n"
                    "MOCK_STEPS=7\n"
                    "export MAX_QUEUE_SIZE=77\n"
                    "MAX_BATCH_DELAY_TIME_MS=\"12\"  # quoted, with a comment\n"
                    "MOCK_LATENCY_MS=33\n")
        # MOCK_LATENCY_MS is also in the real environment (the harness sets 20)
        s = server_factory(cwd=d)
        r = s.get("/v1/config", headers=AUTH)
        assert r.status == 200, r.body
        cfg = r.json()
        assert cfg["MOCK_STEPS"] == 7
        assert cfg["MAX_QUEUE_SIZE"] == 77
        assert cfg["MAX_BATCH_DELAY_TIME_MS"] == 12
        assert cfg["MOCK_LATENCY_MS"] == 20
        assert s.liveness()["max_queue_size"] == 77
        assert_unauth = s.get("/v1/config")
        assert assert_unauth.status == 401


def test_dotenv_bad_value_names_variable():
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, ".env"), "w") as f:
            f.write("MOCK_STEPS=seven\n")
        p = run_bin({}, cwd=d)
        assert p.returncode != 0
        msg = (p.stderr + p.stdout).decode()
        assert "MOCK_STEPS" in msg and "seven" in msg, msg
