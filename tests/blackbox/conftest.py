"""Black-box test harness: starts the real mediad binary and talks HTTP to it.

Every server listens on 127.0.0.1 with SERVICE_PORT=0 (a free port chosen by
the kernel); the harness reads the port from the structured "listening" log
line. Logs are collected (all roles write JSON lines to stderr) so tests can
assert on them. Servers are always stopped at teardown (SIGTERM, then
SIGKILL), workers die with their supervisor (PDEATHSIG)."""
import http.client
import json
import os
import signal
import subprocess
import threading
import time

import pytest

BIN = os.environ.get("MEDIAD_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "mediad")
API_KEY = "test-key"
AUTH = {"Authorization": "Bearer " + API_KEY}

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
        full = {k: v for k, v in os.environ.items()
                if not k.startswith(("MOCK_", "CANARY_", "MODEL_", "SERVICE_"))}
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


@pytest.fixture
def server_factory():
    servers = []

    def start(env=None, args=(), wait=True, cwd=None, **kw):
        e = dict(FAST)
        e.update(env or {})
        e.update({k: str(v) for k, v in kw.items()})
        s = Server(e, args, cwd=cwd)
        servers.append(s)
        if wait:
            s.wait_ready()
        return s

    yield start
    for s in servers:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
