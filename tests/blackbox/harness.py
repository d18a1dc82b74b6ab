"""Black-box test harness: starts the real mediad binary and talks HTTP to it.

The one home of the helpers every tests/blackbox/test_*.py shares; conftest.py
only turns some of them into fixtures. Named harness.py, not *_test.py, so
pytest does not collect it as a test module.

Every server listens on 127.0.0.1 with SERVICE_PORT=0 (a free port chosen by
the kernel); the harness reads the port from the structured "listening" log
line. Logs are collected (all roles write JSON lines to stderr) so tests can
assert on them. Servers are always stopped at teardown (SIGTERM, then
SIGKILL), workers die with their supervisor (PDEATHSIG)."""
import array
import http.client
import io
import json
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
import wave

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
BIN = os.environ.get("MEDIAD_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "mediad")
API_KEY = "test-key"
AUTH = {"Authorization": "Bearer " + API_KEY}
IMG = "/v1/images/generations"
IMG_BODY = {"prompt": "a lighthouse at dusk", "seed": 7, "num_inference_steps": 4}

# Test-sized settings (HEALTH.md section 9).
FAST = {
    "MODEL_RUNNER": "mock",
    "MOCK_WARMUP_SECONDS": "0.3",
    "MOCK_LATENCY_MS": "20",
    "CANARY_WAIT_SECONDS": "1",
    "CANARY_PROBE_TIMEOUT_SECONDS": "1",
    "CANARY_DEEP_PROBE_TIMEOUT_SECONDS": "1",
    "CANARY_TICK_SECONDS": "0.1",
    "CANARY_DEAD_MISSES": "2",
    "CANARY_STARTUP_GRACE_SECONDS": "0",
}

# Settings a test environment never inherits from the caller's environment.
SCRUBBED = ("MOCK_", "CANARY_", "MODEL_", "SERVICE_")


def clean_env(extra_prefixes=()):
    """os.environ without mediad settings (SCRUBBED plus extra_prefixes)."""
    drop = SCRUBBED + tuple(extra_prefixes)
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


# --- the server ---------------------------------------------------------------

class Response:
    def __init__(self, status, headers, body, elapsed):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class Server:
    def __init__(self, env, args=(), cwd=None):
        full = clean_env()
        full.update({"SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": "0", "API_KEY": API_KEY,
                     "LOG_LEVEL": "debug"})
        full.update({k: str(v) for k, v in env.items()})
        self.env = full
        self.logs = []
        self.lock = threading.Lock()
        self.port = None
        self.proc = subprocess.Popen([BIN, *args], env=full, cwd=cwd,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.time() + 10
        while self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError("mediad exited early (%s): %s" %
                                   (self.proc.returncode, self.log_text()))
            if time.time() > deadline:
                raise RuntimeError("mediad did not report its port: " + self.log_text())
            time.sleep(0.01)

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                obj = json.loads(line)
            except ValueError:
                obj = {"raw": line}
            with self.lock:
                self.logs.append(obj)
            if obj.get("event") == "listening":
                self.port = obj["port"]

    def log_text(self):
        with self.lock:
            return "\n".join(json.dumps(l) for l in self.logs[-60:])

    def log_lines(self, **match):
        with self.lock:
            return [l for l in self.logs if all(l.get(k) == v for k, v in match.items())]

    def request(self, method, path, body=None, headers=None, timeout=30, raw=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        t0 = time.monotonic()
        try:
            conn.request(method, path, body=data, headers=hdrs)
            r = conn.getresponse()
            payload = r.read()
            return Response(r.status, r.getheaders(), payload, time.monotonic() - t0)
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, auth=True, headers=None, **kw):
        h = dict(AUTH if auth else {})
        h.update(headers or {})
        return self.request("POST", path, body=body, headers=h, **kw)

    def liveness(self):
        return self.get("/tt-liveness").json()

    def wait_for(self, pred, timeout=10, interval=0.05, what="condition"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = pred()
            if last:
                return last
            time.sleep(interval)
        raise AssertionError("timed out waiting for %s; logs:\n%s" % (what, self.log_text()))

    def wait_ready(self, timeout=15):
        return self.wait_for(lambda: self.get("/health").status == 200, timeout,
                             what="/health 200")

    def worker_pid(self, wid="0"):
        return self.liveness()["worker_info"][wid]["pid"]

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(2)
        return self.proc.returncode


def start_server(env, ready_timeout=15):
    """A Server on env, ready (/health 200); stopped again if it never gets
    there. For module-scoped servers; per-test ones use server_factory."""
    s = Server(env)
    try:
        s.wait_ready(timeout=ready_timeout)
    except BaseException:
        stop_server(s)
        raise
    return s


def stop_server(s):
    """SIGTERM, then SIGKILL if the server is still there."""
    if s.stop() is None:
        s.proc.kill()
        s.proc.wait()


def run_bin(env_over, args=(), cwd=None, timeout=10, scrub=()):
    """Run mediad to completion (startup errors, --help): CompletedProcess."""
    env = clean_env(scrub)
    env.update({"SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": "0"})
    env.update(env_over)
    return subprocess.run([BIN, *args], env=env, cwd=cwd, capture_output=True,
                          timeout=timeout)


# --- workers, probes and faults -----------------------------------------------

def infer(s, path=IMG, body=None, timeout=30):
    """One inference request (IMG_BODY on the image route by default)."""
    return s.post(path, IMG_BODY if body is None and path == IMG else body, timeout=timeout)


def winfo(s, wid="0"):
    return s.liveness()["worker_info"][wid]


def wait_all_ready(s, n, timeout=15):
    """All n workers are ready as /tt-liveness reports them."""
    def ok():
        info = s.liveness()["worker_info"]
        return len(info) == n and all(w["is_ready"] for w in info.values())
    s.wait_for(ok, timeout, what="all %d workers ready" % n)


def inject(s, worker, fault, count=None, value=None):
    """POST /debug/faults (the server needs ENABLE_FAULT_INJECTION=true)."""
    body = {"worker": worker, "fault": fault}
    if count is not None:
        body["count"] = count
    if value is not None:
        body["value"] = value
    r = s.post("/debug/faults", body)
    assert r.status == 200, r.body
    return r


def clear_faults(s):
    r = s.request("DELETE", "/debug/faults", headers=AUTH)
    assert r.status == 200, r.body


class Call(threading.Thread):
    """Run fn() in the background: .get() returns its result or raises;
    .started_at, .done_at (time.monotonic()). start=False leaves the
    thread for the caller to start."""

    def __init__(self, fn, start=True):
        super().__init__(daemon=True)
        self.fn = fn
        self.result = None
        self.error = None
        self.started_at = time.monotonic()
        self.done_at = None
        if start:
            self.start()

    def run(self):
        try:
            self.result = self.fn()
        except BaseException as e:  # noqa: B902 - reported by get()
            self.error = e
        self.done_at = time.monotonic()

    def get(self, timeout=60):
        self.join(timeout)
        assert not self.is_alive(), "request did not finish in %s s" % timeout
        if self.error:
            raise self.error
        return self.result


# --- metrics ------------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)\s*$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def metrics(s):
    """[(name, {labels}, value)] of the Prometheus text at /metrics."""
    r = s.get("/metrics")
    assert r.status == 200
    out = []
    for line in r.body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, "unparsable metrics line: %r" % line
        out.append((m.group(1), dict(_LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def mseries(samples, name, **labels):
    return [(l, v) for n, l, v in samples
            if n == name and all(l.get(k) == x for k, x in labels.items())]


def msum(samples, name, **labels):
    return sum(v for _, v in mseries(samples, name, **labels))


def metric_sum(s, name, **labels):
    """Sum of the series name{labels} at /metrics now."""
    return msum(metrics(s), name, **labels)


# --- errors and raw HTTP --------------------------------------------------------

def hdr(headers, name):
    """Every value of header name in a [(name, value)] list."""
    return [v for k, v in headers if k.lower() == name.lower()]


def strip_json_strings(text):
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)


def json_error(status, body, want, param=None, words=()):
    """body (bytes) is a JSON error of status want in both shapes clients
    read; the bytes are valid UTF-8 JSON. Returns the parsed body."""
    assert status == want, (status, body[:400])
    b = json.loads(body.decode("utf-8"))  # strict: invalid UTF-8 fails here
    err = b["error"]
    assert err["code"] == want, b
    assert isinstance(err["message"], str) and err["message"], b
    assert isinstance(err["type"], str) and err["type"], b
    assert b["detail"] == err["message"], b
    if param is not None:
        assert err["param"] == param, b
    for w in words:
        assert w.lower() in err["message"].lower(), (w, b)
    return b


def assert_json_error(r, status, param=None, words=()):
    """Response r is a JSON error (application/json) of status, or of any
    status in a set/tuple; returns the parsed body."""
    want = r.status if isinstance(status, (set, tuple, list)) and r.status in status else status
    assert (r.header("Content-Type") or "").startswith("application/json"), \
        (r.status, r.headers, r.body[:400])
    return json_error(r.status, r.body, want, param, words)


def connect(s, timeout=10):
    """A plain TCP connection to server s."""
    return socket.create_connection(("127.0.0.1", s.port), timeout=timeout)


def raw_http(port, data, timeout=15):
    """Send raw bytes, read until the server closes: (status, headers, body)."""
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sk:
        try:
            sk.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer (and close) before reading everything
        while True:
            try:
                b = sk.recv(65536)
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1."), raw[:200]
    status = int(lines[0].split()[1])
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers.append((k.strip().decode("latin-1"), v.strip().decode("latin-1")))
    return status, headers, body


# --- request bodies -------------------------------------------------------------

def multipart(fields, files, prefix="----mediad-test-"):
    """A multipart/form-data body built by hand: (body bytes, content type).
    fields: {name: value}; files: {name: (filename, content type, bytes)}."""
    boundary = prefix + uuid.uuid4().hex
    out = []
    for name, value in fields.items():
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n%s\r\n"
                    % (boundary, name, value)).encode())
    for name, (filename, ctype, data) in files.items():
        out.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                    "Content-Type: %s\r\n\r\n" % (boundary, name, filename, ctype)).encode()
                   + data + b"\r\n")
    out.append(("--%s--\r\n" % boundary).encode())
    return b"".join(out), "multipart/form-data; boundary=" + boundary


def wav_bytes(samples, rate, channels=1):
    """A 16-bit PCM WAV of samples (array('h'), interleaved, or any iterable
    of ints)."""
    if not isinstance(samples, array.array):
        samples = array.array("h", samples)
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return out.getvalue()


def read_wav(data):
    """(samples as array('h'), rate, channels) of a 16-bit WAV."""
    with wave.open(io.BytesIO(data)) as w:
        assert w.getsampwidth() == 2
        frames = w.readframes(w.getnframes())
        return array.array("h", frames), w.getframerate(), w.getnchannels()


# --- images -----------------------------------------------------------------------

def png_size(data):
    """(width, height) from the IHDR of a PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    return struct.unpack(">II", data[16:24])


def jpeg_size(data):
    """(width, height) from the first SOFn marker of a JPEG."""
    assert data[:3] == b"\xff\xd8\xff", data[:8]
    assert data[-2:] == b"\xff\xd9"
    i = 2
    while i + 4 <= len(data):
        assert data[i] == 0xFF, "bad JPEG marker at %d" % i
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        seglen = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + seglen
    raise AssertionError("no SOF marker in the JPEG")
