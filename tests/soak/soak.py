#!/usr/bin/python3
"""Chaos soak of mediad (issue 8, item 5).

Runs the real binary with two mock workers under steady traffic from several
client threads (image, tokenize incl. an occasional 256-400 KB prompt, chat
plain and streamed, speech; 2 % of requests are abandoned by their client)
for a bounded time, with short lulls so that idle workers get probed, while a
chaos thread injects random faults on a random ready worker (hang_ping,
hang_run, crash, SIGSTOP, corrupt_deep, slow_ms, error_ping, error_deep,
SIGKILL, a second SIGKILL during the respawn's warmup, POST /tt-reset-device),
sometimes on both workers at once, and clears them (SIGCONT, DELETE
/debug/faults) after a random while. Then it checks:

  answers    every request got an answer before its client deadline
             (REQUEST_PROCESSING_TIMEOUT_SECONDS + margin): lost must be 0;
             no answer came early with the connection reset under a client
             still sending its body;
  results    every 200 carried the right result (tokenize: the bytes of the
             prompt; image and speech with a fixed seed/input: identical to
             the reference fetched at the start; chat: well-formed and equal
             to the reference text, streamed or not); every other answer is a
             429/503/504 JSON error (503 with Retry-After);
  readiness  /tt-liveness, /health, /tt-liveness are sampled every 100 ms:
             - a wedged worker (SIGSTOP, hang_run once a request runs on it,
               hang_ping once a shallow probe is sent) is not ready by T +
               bound, bound = wait + misses x (timeout + tick) + tick when
               idle (misses x (timeout + tick) + tick from the hung probe), or
               progress budget + 2 ticks when busy, + margin; it is never seen
               ready again while wedged, and it is dead or restarted within
               that bound + wait + misses x (timeout + tick) + tick + margin;
             - a worker with no fault for --recovery seconds is ready;
             - /health is 200 exactly when >= MIN_READY_WORKERS workers are
               ready (checked between two /tt-liveness answers that agree);
               /tt-liveness is 200 exactly then, and says so in its body;
               is_ready only for alive, ready, not-dead workers; /health fast;
  leaks      supervisor VmRSS and open fds, taken at quiet points (traffic
             paused, every worker ready) after a warm-up period and at the
             end, grow by <= 10 % and <= 5 (RSS not checked for ASan builds);
  recovery   after the last faults are cleared (and SIGCONT), /health is 200
             and every worker ready within a bound, a request of each kind
             succeeds, and SIGTERM stops the server with exit code 0;
  output     nothing but JSON log lines on stderr (sanitizer reports...).

Exit code 0 when every check passes, 1 otherwise (2: could not start). The
summary gives requests, faults injected by kind, answered, lost, status counts
and RSS/fd figures; -v adds the fault timeline and the log's warnings; the
binary is copied and run in a temporary directory, kept (with mediad.log) when
a check fails or with --keep. Standard library only.

  MEDIAD_BIN=build/mediad /usr/bin/python3 tests/soak/soak.py --seconds 60 [--seed N] [-v]
  make soak SOAK_SECONDS=600
"""
import argparse
import base64
import bisect
import collections
import datetime
import http.client
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
API_KEY = "soak-key"
AUTH = {"Authorization": "Bearer " + API_KEY}

# Test-sized settings (HEALTH.md section 9) and the bounds derived from them.
WAIT = 1.0
PROBE_TIMEOUT = 1.0
TICK = 0.1
DEAD_MISSES = 2
PROGRESS_BUDGET = 2.0
REQUEST_TIMEOUT = 10.0
MIN_READY = 1
LATENCY_MS = 30
WARMUP_S = 0.3

SETTINGS = {
    "MODEL_RUNNER": "mock",
    "MODEL_SERVICE": "all",
    "DEVICE_IDS": "(0),(1)",
    "ENABLE_FAULT_INJECTION": "true",
    "MOCK_WARMUP_SECONDS": str(WARMUP_S),
    "MOCK_LATENCY_MS": str(LATENCY_MS),
    "CANARY_WAIT_SECONDS": str(WAIT),
    "CANARY_PROBE_TIMEOUT_SECONDS": str(PROBE_TIMEOUT),
    "CANARY_DEEP_PROBE_TIMEOUT_SECONDS": str(PROBE_TIMEOUT),
    "CANARY_TICK_SECONDS": str(TICK),
    "CANARY_DEAD_MISSES": str(DEAD_MISSES),
    "CANARY_STARTUP_GRACE_SECONDS": "0",
    "CANARY_PROGRESS_TIMEOUT_SECONDS": str(PROGRESS_BUDGET),
    "CANARY_ON_DEAD": "restart",
    "REQUEST_PROCESSING_TIMEOUT_SECONDS": str(REQUEST_TIMEOUT),
    "MAX_WORKER_RESTART_COUNT": "1000",
    "WORKER_RESTART_WINDOW_SECONDS": "5",
    "MIN_READY_WORKERS": str(MIN_READY),
    "LOG_LEVEL": "debug",
}

IDLE_BOUND = WAIT + DEAD_MISSES * (PROBE_TIMEOUT + TICK) + TICK   # idle wedge -> dead
PROBE_BOUND = DEAD_MISSES * (PROBE_TIMEOUT + TICK) + TICK         # from a hung probe
BUSY_BOUND = PROGRESS_BUDGET + 2 * TICK                           # busy wedge -> stalled

FAULT_KINDS = ["hang_ping", "hang_run", "crash", "sigstop", "corrupt_deep", "slow_ms",
               "error_ping", "error_deep", "sigkill",
               # beyond the list: a second SIGKILL while the respawned
               # worker warms up, and an operator reset (POST /tt-reset-device)
               "sigkill_warmup", "reset_device"]
WEDGES = ("sigstop", "hang_run", "hang_ping")
# wedges are drawn twice as often: their detection bound is the main check
FAULT_WEIGHTS = [2 if k in WEDGES else 1 for k in FAULT_KINDS]

IMAGE_PNG = {"prompt": "a soak test lighthouse", "seed": 4242, "width": 64, "height": 64,
             "num_inference_steps": 4, "image_return_format": "PNG"}
IMAGE_JPEG = {"prompt": "a soak test bicycle", "seed": 77, "width": 64, "height": 96,
              "num_inference_steps": 4}
CHAT = {"model": "mediad-mock", "messages": [{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": "Soak: say something."}],
        "max_tokens": 12, "seed": 3}
SPEECH = {"input": "The soak keeps talking."}
TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ0123456789.,!?-" + "éü日本語€"


def log(msg):
    print("[soak %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# --- HTTP -------------------------------------------------------------------

class Resp:
    __slots__ = ("status", "headers", "body", "t0", "t1")

    def __init__(self, status, headers, body, t0, t1):
        self.status, self.headers, self.body, self.t0, self.t1 = status, headers, body, t0, t1

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body)


def http_req(port, method, path, body=None, headers=None, timeout=5.0):
    """One request on a fresh connection; raises OSError/HTTPException on failure."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    t0 = time.time()
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        payload = r.read()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, payload, t0,
                    time.time())
    finally:
        conn.close()


def post_json(port, path, body, timeout):
    """POST like a client that writes its whole body before reading, but that
    still reads an answer the server sent early (e.g. a 503 before reading a
    long body) when the send fails: (Resp, send error or None). Raises
    OSError/HTTPException when no answer can be read."""
    data = json.dumps(body).encode()
    head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n"
            "\r\n" % (path, API_KEY, len(data))).encode()
    t0 = time.time()
    sk = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        send_err = None
        try:
            sk.sendall(head + data)
        except OSError as e:
            send_err = e
        r = http.client.HTTPResponse(sk, method="POST")
        r.begin()
        payload = r.read()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, payload, t0,
                    time.time()), send_err
    finally:
        sk.close()


# --- the server -------------------------------------------------------------

def parse_ts(ts):
    try:
        return datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return None


class Server:
    """The mediad process, started from a private copy of the binary in a
    private working directory (no stray .env, no core files), with its logs
    written to a file and the interesting lines kept in memory."""

    def __init__(self, binary, workdir, extra_env):
        self.workdir = workdir
        self.bin = os.path.join(workdir, "mediad")
        shutil.copy2(binary, self.bin)  # others may rebuild build/mediad meanwhile
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("MOCK_", "CANARY_", "MODEL_", "SERVICE_", "DEVICE_",
                                    "MAX_", "MIN_", "WORKER_", "REQUEST_", "ENABLE_"))}
        env.update({"SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": "0", "API_KEY": API_KEY})
        env.update(SETTINGS)
        env.update(extra_env)
        self.log_path = os.path.join(workdir, "mediad.log")
        self.logf = open(self.log_path, "w")
        self.lock = threading.Lock()
        self.port = None
        self.levels = collections.Counter()
        self.messages = collections.Counter()   # warn/error messages, numbers masked
        self.raw_lines = []                     # non-JSON lines (sanitizer reports...)
        self.transitions = []                   # (ts, worker, from, to, tier, cause, age)
        self.n_lines = 0

        def no_core():
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        self.proc = subprocess.Popen([self.bin], env=env, cwd=workdir, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=no_core)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.time() + 15
        while self.port is None:
            if self.proc.poll() is not None:
                raise RuntimeError("mediad exited early with %s; log: %s" %
                                   (self.proc.returncode, self.log_path))
            if time.time() > deadline:
                raise RuntimeError("mediad did not report its port; log: " + self.log_path)
            time.sleep(0.01)

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.logf.write(line + "\n")
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError
            except ValueError:
                with self.lock:
                    if len(self.raw_lines) < 200:
                        self.raw_lines.append(line)
                continue
            lvl = obj.get("level", "?")
            with self.lock:
                self.n_lines += 1
                self.levels[lvl] += 1
                if lvl in ("warn", "error"):
                    key = "%s %s: %s" % (lvl, obj.get("role"),
                                         re.sub(r"\d+(\.\d+)?", "N", str(obj.get("msg"))))
                    self.messages[key] += 1
                if obj.get("event") == "canary_transition":
                    m = re.match(r"worker (\S+) canary", str(obj.get("msg", "")))
                    wid = obj.get("worker") or (m.group(1) if m else None)
                    self.transitions.append((parse_ts(obj.get("ts")), wid, obj.get("from"),
                                             obj.get("to"), obj.get("tier"), obj.get("cause"),
                                             obj.get("latency_s")))
            if obj.get("event") == "listening":
                self.port = obj["port"]
        self.logf.flush()

    def children(self):
        """pids whose parent is the supervisor."""
        out = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open("/proc/%s/stat" % d) as f:
                        st = f.read()
                    if int(st.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                        out.append(int(d))
                except (OSError, ValueError, IndexError):
                    pass
        return out

    def is_child(self, pid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                st = f.read()
            return int(st.rsplit(")", 1)[1].split()[1]) == self.proc.pid
        except (OSError, ValueError, IndexError):
            return False

    def signal_worker(self, pid, sig):
        if pid and pid > 0 and self.is_child(pid):
            try:
                os.kill(pid, sig)
                return True
            except ProcessLookupError:
                return False
        return False

    def rss_fds(self):
        """(VmRSS in kB, open fds) of the supervisor; fds as the minimum of a
        few reads so a sampler connection open at that instant is not counted."""
        rss = None
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        fds = []
        for _ in range(10):
            fds.append(len(os.listdir("/proc/%d/fd" % self.proc.pid)))
            time.sleep(0.02)
        return rss, min(fds)

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.reader.join(5)
                return None
        self.reader.join(5)
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --- requests and their checks ------------------------------------------------

def check_error(r):
    """None when r is an acceptable failure answer: a 429/503/504 JSON error."""
    if r.status not in (429, 503, 504):
        return "unexpected status %d: %r" % (r.status, r.body[:200])
    if not (r.header("content-type") or "").startswith("application/json"):
        return "%d without JSON content type (%s)" % (r.status, r.header("content-type"))
    try:
        body = r.json()
        err = body["error"]
        if err["code"] != r.status or not isinstance(err["message"], str) or not err["message"]:
            return "%d with a malformed error: %r" % (r.status, r.body[:200])
    except (ValueError, KeyError, TypeError):
        return "%d with a malformed JSON error: %r" % (r.status, r.body[:200])
    if r.status == 503 and not r.header("retry-after"):
        return "503 without Retry-After"
    return None


def parse_sse(body):
    events = []
    for block in body.decode("utf-8", "replace").split("\n\n"):
        block = block.strip("\n")
        if not block:
            continue
        if not block.startswith("data: "):
            raise ValueError("not an SSE data block: %r" % block[:100])
        events.append(block[len("data: "):])
    return events


class Refs:
    """Reference answers fetched once at the start."""

    def __init__(self, port):
        def must(path, body):
            r = http_req(port, "POST", path, body, AUTH, timeout=REQUEST_TIMEOUT + 5)
            if r.status != 200:
                raise RuntimeError("reference %s: %d %r" % (path, r.status, r.body[:300]))
            return r
        png = must("/v1/images/generations", IMAGE_PNG).json()
        img = base64.b64decode(png["images"][0], validate=True)
        if img[:8] != b"\x89PNG\r\n\x1a\n" or struct.unpack(">II", img[16:24]) != (64, 64):
            raise RuntimeError("reference PNG is not a 64x64 PNG")
        jpg = must("/v1/images/generations", IMAGE_JPEG).json()
        if base64.b64decode(jpg["images"][0], validate=True)[:3] != b"\xff\xd8\xff":
            raise RuntimeError("reference JPEG is not a JPEG")
        # both workers must agree (same seed, same picture), so fetch twice
        png2 = must("/v1/images/generations", IMAGE_PNG).json()
        if png2["images"] != png["images"]:
            raise RuntimeError("two reference images with the same seed differ")
        self.png_images, self.jpeg_images = png["images"], jpg["images"]
        chat = must("/v1/chat/completions", CHAT).json()
        self.chat_text = chat["choices"][0]["message"]["content"]
        if not isinstance(self.chat_text, str) or not self.chat_text:
            raise RuntimeError("reference chat text is empty")
        sp = must("/v1/audio/speech", SPEECH)
        if sp.body[:4] != b"RIFF" or sp.body[8:12] != b"WAVE":
            raise RuntimeError("reference speech is not a WAV")
        self.speech = sp.body


def make_request(kind, rng):
    """(path, body, checker) for one request of this kind; checker(resp, refs)
    returns None when a 200 is right, "stream_error" for a 200 stream that
    ended with a JSON error event, else what is wrong."""
    if kind == "image_png":
        return "/v1/images/generations", IMAGE_PNG, check_image_png
    if kind == "image_jpeg":
        return "/v1/images/generations", IMAGE_JPEG, check_image_jpeg
    if kind == "tokenize":
        prompt = "".join(rng.choice(TOKEN_ALPHABET) for _ in range(rng.randint(1, 60)))
        return "/v1/tokenize", {"prompt": prompt}, lambda r, refs: check_tokenize(r, prompt)
    if kind == "tokenize_big":
        # a long prompt (256-400 KB): its IPC frame is larger than a socket
        # buffer, so a wedged worker leaves it half sent
        unit = "".join(rng.choice(TOKEN_ALPHABET) for _ in range(64))
        prompt = (unit * (rng.randint(256, 400) * 1024 // 64 + 1))[:rng.randint(256, 400) * 1024]
        return "/v1/tokenize", {"prompt": prompt}, lambda r, refs: check_tokenize(r, prompt)
    if kind == "chat":
        return "/v1/chat/completions", CHAT, check_chat
    if kind == "chat_stream":
        return "/v1/chat/completions", dict(CHAT, stream=True), check_chat_stream
    if kind == "speech":
        return "/v1/audio/speech", SPEECH, check_speech
    raise ValueError(kind)


def _json_200(r):
    if not (r.header("content-type") or "").startswith("application/json"):
        raise ValueError("content type %s" % r.header("content-type"))
    return r.json()


def _check_images(r, want):
    body = _json_200(r)
    if body.get("images") != want:
        return "image differs from the reference"
    if [d.get("b64_json") for d in body.get("data", [])] != want:
        return "data[].b64_json differs from images"
    return None


def check_image_png(r, refs):
    return _check_images(r, refs.png_images)


def check_image_jpeg(r, refs):
    return _check_images(r, refs.jpeg_images)


def check_tokenize(r, prompt):
    body = _json_200(r)
    want = list(prompt.encode("utf-8"))
    if body.get("tokens") != want:
        got = body.get("tokens")
        return "tokens %.150r are not the bytes of the %d-byte prompt %.80r" % (got, len(want),
                                                                               prompt)
    if body.get("count") != len(want):
        return "count %r != %d" % (body.get("count"), len(want))
    return None


def check_chat(r, refs):
    c = _json_200(r)
    if c.get("object") != "chat.completion" or not c.get("id"):
        return "not a chat.completion: %r" % r.body[:200]
    ch = c["choices"][0]
    if ch["message"]["role"] != "assistant" or ch["finish_reason"] not in ("stop", "length"):
        return "malformed choice: %r" % ch
    if ch["message"]["content"] != refs.chat_text:
        return "chat text %r differs from the reference %r" % (ch["message"]["content"],
                                                              refs.chat_text)
    u = c["usage"]
    if u["total_tokens"] != u["prompt_tokens"] + u["completion_tokens"]:
        return "usage does not add up: %r" % u
    return None


def check_chat_stream(r, refs):
    if not (r.header("content-type") or "").startswith("text/event-stream"):
        return "stream content type %s" % r.header("content-type")
    events = parse_sse(r.body)
    if not events:
        return "empty stream"
    text, ids = "", set()
    for e in events[:-1]:
        c = json.loads(e)
        if "error" in c:
            return "error event before the end of the stream: %r" % e[:200]
        if c.get("object") != "chat.completion.chunk":
            return "not a chunk: %r" % e[:200]
        ids.add(c["id"])
        text += c["choices"][0]["delta"].get("content") or ""
    if len(ids) > 1:
        return "chunks with different ids"
    if not refs.chat_text.startswith(text):
        return "streamed text %r is not a prefix of the reference %r" % (text, refs.chat_text)
    last = events[-1]
    if last == "[DONE]":
        if text != refs.chat_text:
            return "streamed text %r differs from the reference %r" % (text, refs.chat_text)
        return None
    err = json.loads(last)
    if isinstance(err, dict) and isinstance(err.get("error"), dict) and \
            err["error"].get("code") in (503, 504) and err["error"].get("message"):
        return "stream_error"
    return "stream ended neither with [DONE] nor with a 503/504 error event: %r" % last[:200]


def check_speech(r, refs):
    if r.header("content-type") != "audio/wav":
        return "speech content type %s" % r.header("content-type")
    if r.body != refs.speech:
        return "speech differs from the reference (%d vs %d bytes)" % (len(r.body),
                                                                       len(refs.speech))
    return None


# --- traffic ------------------------------------------------------------------

FAMILIES = [("image_png", "image_jpeg"), ("tokenize",) * 19 + ("tokenize_big",),
            ("chat", "chat", "chat_stream"), ("speech",)]


class Traffic:
    """Client threads; paused during lulls (so idle workers get probed) and
    while the soak takes a quiet measurement."""

    def __init__(self, soak, n_clients, seed):
        self.soak = soak
        self.cond = threading.Condition()
        self.pauses = set()
        self.inflight = 0
        self.stopping = False
        self.records = []      # (t0, t1, kind, status or None, outcome, detail)
        self.abandoned = 0     # requests whose client went away on purpose
        self.early_resets = []  # answered early, connection reset while sending the body
        self.rec_lock = threading.Lock()
        self.client_timeout = REQUEST_TIMEOUT + soak.args.client_margin
        self.threads = [threading.Thread(target=self._client, args=(i, seed + i), daemon=True)
                        for i in range(n_clients)]

    def start(self):
        for t in self.threads:
            t.start()

    def pause(self, why):
        with self.cond:
            self.pauses.add(why)

    def resume(self, why):
        with self.cond:
            self.pauses.discard(why)
            self.cond.notify_all()

    def quiesce(self, why, timeout=REQUEST_TIMEOUT + 10):
        """Pause and wait until no client request is in flight."""
        deadline = time.time() + timeout
        with self.cond:
            self.pauses.add(why)
            while self.inflight and time.time() < deadline:
                self.cond.wait(0.05)
            return self.inflight == 0

    def stop(self):
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        for t in self.threads:
            t.join(self.client_timeout + 5)

    def _abandon(self, port, rng):
        """A client that sends a request and goes away before the answer (the
        server must cancel it and close the connection: see the fd check)."""
        kind = rng.choice(["image_png", "speech", "chat_stream", "tokenize"])
        path, body, _ = make_request(kind, rng)
        data = json.dumps(body).encode()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sk:
                sk.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                            % (path, API_KEY, len(data))).encode() + data)
                time.sleep(rng.uniform(0, 0.05))
        except OSError:
            pass
        with self.rec_lock:
            self.abandoned += 1
        with self.cond:
            self.inflight -= 1
            self.cond.notify_all()

    def _client(self, idx, seed):
        rng = random.Random(seed)
        family = FAMILIES[idx % len(FAMILIES)]
        port = self.soak.server.port
        while True:
            with self.cond:
                while self.pauses and not self.stopping:
                    self.cond.wait()
                if self.stopping:
                    return
                self.inflight += 1
            if rng.random() < self.soak.args.abandon:
                self._abandon(port, rng)
                continue
            kind = rng.choice(family)
            path, body, checker = make_request(kind, rng)
            t0 = time.time()
            status, outcome, detail = None, None, None
            try:
                r, send_err = post_json(port, path, body, self.client_timeout)
                status = r.status
                if send_err is not None:
                    # answered before the body was read, then the connection
                    # was reset: clients that write the whole body first
                    # (http.client, requests) see only the error
                    with self.rec_lock:
                        self.early_resets.append((t0, kind, r.status, "%s: %s" % (
                            type(send_err).__name__, send_err)))
                if r.t1 - t0 > self.client_timeout:
                    outcome, detail = "late", "answered after %.2f s" % (r.t1 - t0)
                elif r.status == 200:
                    try:
                        why = checker(r, self.soak.refs)
                    except Exception as e:  # any malformed 200 is a wrong result
                        why = "unparsable 200: %s: %s: %r" % (type(e).__name__, e, r.body[:200])
                    if why is None:
                        outcome = "ok"
                    elif why == "stream_error":
                        outcome = "stream_error"
                    else:
                        outcome, detail = "wrong_result", why
                else:
                    why = check_error(r)
                    outcome, detail = ("error_ok", None) if why is None else ("bad_error", why)
            except (OSError, http.client.HTTPException) as e:
                outcome, detail = "lost", "%s: %s" % (type(e).__name__, e)
            t1 = time.time()
            if detail and len(detail) > 400:
                detail = detail[:400] + "..."
            with self.rec_lock:
                self.records.append((t0, t1, kind, status, outcome, detail))
            with self.cond:
                self.inflight -= 1
                self.cond.notify_all()
            if outcome == "ok":
                time.sleep(rng.uniform(0, 0.04))
            else:
                time.sleep(rng.uniform(0.05, 0.15))  # no hot loop on fast 503s


# --- sampler --------------------------------------------------------------------

class Sample:
    __slots__ = ("t_send", "t_recv", "live_status", "live", "health_status", "health",
                 "live2_status", "live2", "lat_health", "lat_live", "error")


class Sampler:
    """Every 100 ms: /tt-liveness, /health, /tt-liveness back to back."""

    def __init__(self, soak, interval):
        self.soak = soak
        self.interval = interval
        self.samples = []
        self.stopping = threading.Event()
        self.rss_series = []   # (t, rss kB, fds) once a second, under traffic
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join(10)

    def latest(self):
        for s in reversed(self.samples[-5:]):
            if s.live:
                return s
        return None

    def _get(self, path):
        r = http_req(self.soak.server.port, "GET", path, timeout=2.0)
        try:
            body = r.json()
        except ValueError:
            body = None
        return r, body

    def _run(self):
        next_rss = 0
        while not self.stopping.is_set():
            t = time.time()
            s = Sample()
            s.error = None
            s.t_send = t
            try:
                r1, s.live = self._get("/tt-liveness")
                r2, s.health = self._get("/health")
                r3, s.live2 = self._get("/tt-liveness")
                s.live_status, s.health_status, s.live2_status = r1.status, r2.status, r3.status
                s.lat_live, s.lat_health = r1.t1 - r1.t0, r2.t1 - r2.t0
                s.t_recv = r1.t1
            except (OSError, http.client.HTTPException) as e:
                s.error = "%s: %s" % (type(e).__name__, e)
                s.live = s.live2 = s.health = None
                s.t_recv = time.time()
            self.samples.append(s)
            if t >= next_rss:
                next_rss = t + 1.0
                try:
                    with open("/proc/%d/status" % self.soak.server.proc.pid) as f:
                        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
                    fds = len(os.listdir("/proc/%d/fd" % self.soak.server.proc.pid))
                    self.rss_series.append((t, rss, fds))
                except (OSError, StopIteration):
                    pass
            self.stopping.wait(max(0.0, self.interval - (time.time() - t)))


# --- chaos -----------------------------------------------------------------------

class Fault:
    def __init__(self, kind, wid, pid, rc, value=None):
        self.kind, self.wid, self.pid, self.rc, self.value = kind, wid, pid, rc, value
        self.t_inject = None
        self.t_clear = None
        self.stopped = False
        self.note = ""


class Chaos:
    def __init__(self, soak, seed, until):
        self.soak = soak
        self.rng = random.Random(seed)
        self.until = until
        self.faults = []
        self.skipped = 0
        self.errors = []
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_ev.set()
        self.thread.join(30)

    def _live(self):
        r = http_req(self.soak.server.port, "GET", "/tt-liveness", timeout=2.0)
        return r.json()

    def inject(self, wid, info, kind):
        srv = self.soak.server
        f = Fault(kind, wid, info["pid"], info["restart_count"])
        if kind in ("sigstop", "sigkill", "sigkill_warmup"):
            sig = signal.SIGSTOP if kind == "sigstop" else signal.SIGKILL
            f.t_inject = time.time()
            if not srv.signal_worker(info["pid"], sig):
                self.skipped += 1
                return None
            f.stopped = kind == "sigstop"
            if kind == "sigkill_warmup":
                # kill the respawned process again before it is ready
                deadline = time.time() + 5
                while time.time() < deadline:
                    w = self._live()["worker_info"][wid]
                    if w["pid"] > 0 and w["pid"] != info["pid"]:
                        if w["state"] in ("starting", "warming_up") and \
                                srv.signal_worker(w["pid"], signal.SIGKILL):
                            f.value = "again in %s" % w["state"]
                        else:
                            f.value = "missed (%s)" % w["state"]
                        break
                    time.sleep(0.01)
        elif kind == "reset_device":
            f.t_inject = time.time()
            r = http_req(srv.port, "POST", "/tt-reset-device?device_id=" + wid, None, AUTH,
                         timeout=5.0)
            if r.status != 200:
                self.errors.append("POST /tt-reset-device?device_id=%s -> %d %r" %
                                   (wid, r.status, r.body[:200]))
                return None
        else:
            body = {"worker": wid, "fault": kind}
            if kind == "slow_ms":
                # mostly latency, sometimes longer than the progress budget (a stall)
                f.value = self.rng.choice([50, 150, 400, 800, 1500, 2600, 4000])
                body["value"] = f.value
            f.t_inject = time.time()
            r = http_req(srv.port, "POST", "/debug/faults", body, AUTH, timeout=5.0)
            if r.status != 200:
                self.errors.append("POST /debug/faults %s -> %d %r" % (body, r.status,
                                                                       r.body[:200]))
                return None
        self.faults.append(f)
        return f

    def clear(self, active):
        srv = self.soak.server
        for f in active:
            if f.stopped:
                srv.signal_worker(f.pid, signal.SIGCONT)
        t = time.time()
        try:
            r = http_req(srv.port, "DELETE", "/debug/faults", None, AUTH, timeout=5.0)
            if r.status != 200:
                self.errors.append("DELETE /debug/faults -> %d %r" % (r.status, r.body[:200]))
        except (OSError, http.client.HTTPException) as e:
            self.errors.append("DELETE /debug/faults failed: %s" % e)
        for f in active:
            f.t_clear = t

    def _pick(self, exclude=()):
        live = self._live()
        ready = [(wid, w) for wid, w in sorted(live["worker_info"].items())
                 if w["is_ready"] and w["state"] == "ready" and w["pid"] > 0
                 and wid not in exclude]
        return self.rng.choice(ready) if ready else (None, None)

    def kind(self):
        return self.rng.choices(FAULT_KINDS, FAULT_WEIGHTS)[0]

    def _run(self):
        rng = self.rng
        while not self.stop_ev.is_set() and time.time() < self.until - 1.0:
            active = []
            try:
                wid, info = self._pick()
                if wid is None:
                    self.stop_ev.wait(0.3)
                    continue
                f = self.inject(wid, info, self.kind())
                if f:
                    active.append(f)
                # wedges mostly outlast their detection bound (hang_ping waits
                # for a lull to be probed), sometimes not (released before the
                # verdict); the rest are held 1-8 s
                kind, x = (f.kind if f else ""), rng.random()
                if kind == "hang_ping":
                    lo, hi = 5.0, 12.0
                elif kind in WEDGES:
                    # short: released before the verdict; long: past the
                    # verdict, the dead verdict and the restart
                    lo, hi = (1.0, 4.5) if x < 0.2 else (4.5, 8.0) if x < 0.5 else (9.0, 12.0)
                else:
                    lo, hi = 1.0, 8.0
                hold = min(rng.uniform(lo, hi), max(0.5, self.until - time.time() - 0.5))
                t_end = time.time() + hold
                if rng.random() < 0.3:   # a second fault on the other worker meanwhile
                    if not self.stop_ev.wait(rng.uniform(0, hold * 0.6)):
                        wid2, info2 = self._pick(exclude=(wid,))
                        if wid2 is not None:
                            f2 = self.inject(wid2, info2, self.kind())
                            if f2:
                                active.append(f2)
                self.stop_ev.wait(max(0.0, t_end - time.time()))
            except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                self.errors.append("chaos: %s: %s" % (type(e).__name__, e))
            finally:
                if active:
                    self.clear(active)
            self.stop_ev.wait(rng.uniform(0.5, 3.0))


class Lulls:
    """Traffic runs for 2-6 s, then pauses 1.5-3.5 s: idle workers get probed
    (probes only go to idle workers), so the probe faults are exercised too."""

    def __init__(self, traffic, seed):
        self.traffic = traffic
        self.rng = random.Random(seed)
        self.stop_ev = threading.Event()
        self.n = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_ev.set()
        self.thread.join(10)
        self.traffic.resume("lull")

    def _run(self):
        while not self.stop_ev.wait(self.rng.uniform(2.0, 6.0)):
            self.traffic.pause("lull")
            self.n += 1
            self.stop_ev.wait(self.rng.uniform(1.5, 3.5))
            self.traffic.resume("lull")


# --- analysis --------------------------------------------------------------------

def wstate(sample, wid):
    if not sample.live:
        return None
    return sample.live.get("worker_info", {}).get(wid)


def ready_count(live):
    return sum(1 for w in live["worker_info"].values() if w["is_ready"])


class Checks:
    def __init__(self):
        self.results = []   # (name, ok, detail)

    def add(self, name, ok, detail=""):
        self.results.append((name, bool(ok), detail))

    @property
    def ok(self):
        return all(ok for _, ok, _ in self.results)


def analyse_health(samples, checks, max_report=5):
    bad_live, bad_health, bad_self, errors, n = [], [], [], [], 0
    for s in samples:
        if s.error:
            errors.append("%.3f %s" % (s.t_send, s.error))
            continue
        n += 1
        for st, lv in ((s.live_status, s.live), (s.live2_status, s.live2)):
            rc = ready_count(lv)
            want = 200 if rc >= MIN_READY else 503
            if st != want or lv.get("model_ready") != (want == 200) or \
                    lv.get("ready_workers") != rc or lv.get("status") != "alive":
                bad_live.append("%.3f /tt-liveness %d with %d ready (model_ready %s, "
                                "ready_workers %s)" % (s.t_send, st, rc, lv.get("model_ready"),
                                                       lv.get("ready_workers")))
            for wid, w in lv["worker_info"].items():
                if w["is_ready"] and (not w["is_alive"] or w["state"] != "ready" or
                                      w["canary_state"] == "dead"):
                    bad_self.append("%.3f worker %s is_ready with state %s canary %s alive %s"
                                    % (s.t_send, wid, w["state"], w["canary_state"],
                                       w["is_alive"]))
        r1, r2 = ready_count(s.live), ready_count(s.live2)
        if (r1 >= MIN_READY) == (r2 >= MIN_READY):
            want = 200 if r1 >= MIN_READY else 503
            if s.health_status != want:
                bad_health.append("%.3f /health %d while %d workers ready before and %d after "
                                  "(%r)" % (s.t_send, s.health_status, r1, r2, s.health))
        if s.health_status == 200 and (not s.health or
                                       s.health.get("ready_workers", 0) < MIN_READY):
            bad_health.append("%.3f /health 200 with body %r" % (s.t_send, s.health))
    failed = ": " + "; ".join(errors[:max_report]) if errors else ""
    checks.add("sampler: every health sample answered", not errors,
               "%d samples, %d failed%s" % (len(samples), len(errors), failed))
    checks.add("/health is 200 iff >= MIN_READY_WORKERS workers are ready", not bad_health,
               "%d consistent samples checked%s" % (n, "; " + "; ".join(bad_health[:max_report])
                                                     if bad_health else ""))
    checks.add("/tt-liveness status and body match its worker_info", not bad_live,
               "; ".join(bad_live[:max_report]))
    checks.add("is_ready only for alive, ready, not-dead workers", not bad_self,
               "; ".join(bad_self[:max_report]))
    lat = sorted(s.lat_health for s in samples if not s.error)
    if lat:
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        checks.add("/health latency stays low (max < 1 s)", lat[-1] < 1.0,
                   "median %.1f ms, p99 %.1f ms, max %.1f ms" % (lat[len(lat) // 2] * 1e3,
                                                               p99 * 1e3, lat[-1] * 1e3))


def wedge_start(f, samples, times, transitions):
    """(T, how): when the worker was really wedged, or (None, why not)."""
    if f.kind == "sigstop":
        return f.t_inject, "SIGSTOP"
    if f.kind == "hang_run":
        # the next batch hangs: the first time a request is seen on it
        i = bisect.bisect_left(times, f.t_inject)
        for s in samples[i:]:
            if s.t_recv > f.t_clear:
                break
            w = wstate(s, f.wid)
            if w and w["pid"] == f.pid and w.get("in_flight", 0) > 0:
                return s.t_recv, "first request after injection"
        return None, "no request ran on it before the clear"
    if f.kind == "hang_ping":
        # the first shallow probe hangs (deep probes do not ping): when it was
        # sent, from the supervisor's log; a probe sent while the worker was
        # already suspect logs no "probing", only its timeout (sent = ts - age)
        cands = []
        with_lat = [t for t in transitions if t[1] == f.wid and t[4] == "shallow"]
        for ts, wid, fr, to, tier, cause, lat in with_lat:
            if not ts:
                continue
            if to == "probing" and cause == "probe":
                sent = ts
            elif cause == "timeout":
                sent = ts - (lat or PROBE_TIMEOUT)
            else:
                continue
            if f.t_inject <= sent <= f.t_clear:
                cands.append(sent)
        if cands:
            return min(cands), "shallow probe sent"
        return None, "no shallow probe before the clear"
    return None, "not a wedge"


def analyse_wedges(faults, samples, transitions, margin, checks, stats):
    times = [s.t_recv for s in samples]
    violations, evaluated, skipped = [], 0, collections.Counter()
    not_dead, dead_evaluated = [], 0
    for f in faults:
        if f.kind not in WEDGES:
            continue
        T, how = wedge_start(f, samples, times, transitions)
        if T is None:
            skipped[f.kind + ": " + how] += 1
            f.note = "not wedged: " + how
            continue
        same = lambda w: w is not None and w["pid"] == f.pid and w["restart_count"] == f.rc
        i0 = bisect.bisect_left(times, T)
        window = [s for s in samples[i0:] if s.live and s.t_recv <= f.t_clear]
        detect = next((s.t_recv for s in window
                       if not (same(wstate(s, f.wid)) and wstate(s, f.wid)["is_ready"])), None)
        busy = lambda s: same(wstate(s, f.wid)) and wstate(s, f.wid).get("in_flight", 0) > 0
        if f.kind == "hang_run":
            deadline = T + BUSY_BOUND + LATENCY_MS / 1e3
            path = "busy"
        else:
            idle = T + (IDLE_BOUND if f.kind == "sigstop" else PROBE_BOUND)
            before = [s for s in window if s.t_send >= T + 0.05 and
                      (detect is None or s.t_recv < detect)]
            if f.kind == "sigstop" and before and all(busy(s) for s in before):
                deadline, path = T + BUSY_BOUND, "busy"
            else:
                d = next((s.t_recv for s in before if busy(s) and s.t_recv < idle), None)
                deadline = max(idle, d + BUSY_BOUND) if d is not None else idle
                path = "idle" if d is None else "idle, then busy"
        deadline += margin
        late = [s for s in window if s.t_send > deadline and same(wstate(s, f.wid)) and
                wstate(s, f.wid)["is_ready"]]
        # then it is declared dead and restarted: the idle probes after the
        # stall (or after the hung probe) take at most IDLE_BOUND more
        dead_by = deadline + IDLE_BOUND + margin
        alive = [s for s in window if s.t_send > dead_by and same(wstate(s, f.wid)) and
                 wstate(s, f.wid)["canary_state"] != "dead"]
        if f.t_clear > dead_by:
            dead_evaluated += 1
            if alive:
                w = wstate(alive[0], f.wid)
                not_dead.append("worker %s %s (pid %d) wedged at +%.2f s: still not dead nor "
                                "restarted %.2f s later (bound %.2f s): state %s, canary %s, "
                                "misses %s, %s" % (f.wid, f.kind, f.pid, T - f.t_inject,
                                                   alive[0].t_send - T, dead_by - T, w["state"],
                                                   w["canary_state"], w["misses"],
                                                   w.get("canary_reason", "")))
        f.note = "wedged +%.2f s (%s), %s path, bound +%.2f s, %s" % (
            T - f.t_inject, how, path, deadline - T,
            "not ready after %.2f s" % (detect - T) if detect is not None else "never not ready")
        if f.t_clear < deadline and not late:
            skipped["%s: released before the bound" % f.kind] += 1
            if detect is not None:
                stats[f.kind].append(detect - T)
            continue
        evaluated += 1
        if detect is not None:
            stats[f.kind].append(detect - T)
        if late:
            violations.append("worker %s %s (%s) wedged at %.3f (%s, %s path): still ready at "
                              "%.3f, %.2f s later (bound %.2f s incl. margin)%s"
                              % (f.wid, f.kind, "pid %d" % f.pid, T, how, path, late[0].t_send,
                                 late[0].t_send - T, deadline - T,
                                 "; first not ready after %.2f s" % (detect - T)
                                 if detect else "; never seen not ready before the clear"))
    checks.add("a wedged worker is declared dead and restarted (bound + %.1f s)" % IDLE_BOUND,
               not not_dead, "%d wedges held long enough%s" % (
                   dead_evaluated, "; " + "; ".join(not_dead[:4]) if not_dead else ""))
    checks.add("a wedged worker is not ready within the detection bound", not violations,
               "%d wedges evaluated; %s%s" % (evaluated,
                                              ", ".join("%s %d" % kv for kv in sorted(
                                                  skipped.items())) or "none skipped",
                                              "; " + "; ".join(violations[:6])
                                              if violations else ""))


def annotate_faults(faults, samples):
    """For the verbose timeline: when each faulted worker was first seen not
    ready or restarted (until 3 s after the clear)."""
    times = [s.t_recv for s in samples]
    for f in faults:
        if f.note:
            continue
        i = bisect.bisect_left(times, f.t_inject)
        for s in samples[i:]:
            if s.t_recv > (f.t_clear or s.t_recv) + 3.0:
                f.note = "stayed ready"
                break
            w = wstate(s, f.wid)
            if w is None:
                continue
            if w["pid"] != f.pid or w["restart_count"] != f.rc:
                f.note = "restarted, seen after %.2f s" % (s.t_recv - f.t_inject)
                break
            if not w["is_ready"]:
                f.note = "not ready after %.2f s (%s)" % (
                    s.t_recv - f.t_inject, w.get("canary_reason") or w["state"])
                break


def analyse_innocent(faults, samples, recovery, t_chaos_end, checks):
    """A worker with no fault injected for `recovery` seconds must be ready."""
    windows = collections.defaultdict(list)
    for f in faults:
        windows[f.wid].append((f.t_inject - 0.2, (f.t_clear or t_chaos_end) + recovery))
    bad, n = [], 0
    for s in samples:
        if not s.live or s.t_recv > t_chaos_end + recovery:
            continue
        for wid, w in s.live["worker_info"].items():
            if any(a <= s.t_recv and s.t_send <= b for a, b in windows[wid]):
                continue
            n += 1
            if not w["is_ready"]:
                bad.append("%.3f worker %s not ready (state %s, canary %s, %s) with no fault "
                           "for %.0f s" % (s.t_send, wid, w["state"], w["canary_state"],
                                           w.get("canary_reason") or w.get("reason") or "",
                                           recovery))
    checks.add("a worker without faults stays ready", not bad,
               "%d worker samples checked%s" % (n, "; " + "; ".join(bad[:5]) if bad else ""))


# --- the soak ------------------------------------------------------------------

class Soak:
    def __init__(self, args):
        self.args = args
        self.server = None
        self.refs = None
        self.checks = Checks()
        self.metrics_summary = []
        # --env KEY=VALUE overrides a setting (exploration: batching, MIN_READY_WORKERS=2...);
        # the checks follow MIN_READY_WORKERS, the timing bounds assume the defaults above
        global MIN_READY
        self.extra_env = dict(kv.split("=", 1) for kv in args.env)
        MIN_READY = int(self.extra_env.get("MIN_READY_WORKERS", MIN_READY))
        with open(args.bin, "rb") as f:
            self.asan = b"__asan_init" in f.read()

    def summarise_metrics(self):
        """Restarts by reason and probes by outcome, from /metrics."""
        try:
            text = http_req(self.server.port, "GET", "/metrics", timeout=5.0).body.decode()
        except (OSError, http.client.HTTPException):
            return []
        sums = collections.defaultdict(collections.Counter)
        for line in text.splitlines():
            m = re.match(r'(mediad_worker_restarts_total|mediad_canary_probes_total)\{(.*)\} (\S+)',
                         line)
            if not m:
                continue
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
            key = labels.get("reason") if m.group(1).startswith("mediad_worker") else \
                "%s/%s" % (labels.get("depth"), labels.get("outcome"))
            sums[m.group(1)][key] += int(float(m.group(3)))
        return ["%-13s %s" % (name, ", ".join("%s %d" % kv for kv in sorted(sums[metric].items())))
                for name, metric in (("restarts", "mediad_worker_restarts_total"),
                                     ("probes", "mediad_canary_probes_total"))]

    def wait_for(self, pred, timeout, interval=0.05):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                v = pred()
                if v:
                    return v
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                pass
            time.sleep(interval)
        return None

    def live(self):
        return http_req(self.server.port, "GET", "/tt-liveness", timeout=2.0).json()

    def all_ready(self):
        lv = self.live()
        return all(w["is_ready"] for w in lv["worker_info"].values()) and \
            len(lv["worker_info"]) == 2

    def prewarm_heap(self, concurrent=4, rounds=2):
        """Long prompts in parallel, so that the supervisor's heap reaches the
        high-water mark of the traffic before the start measurement (glibc
        keeps what it grew; the RSS check is about growth, not about it)."""
        rng = random.Random(self.args.seed)

        def one():
            path, body, _ = make_request("tokenize_big", rng)
            try:
                post_json(self.server.port, path, body, REQUEST_TIMEOUT + 5)
            except (OSError, http.client.HTTPException):
                pass
        for _ in range(rounds):
            ts = [threading.Thread(target=one) for _ in range(concurrent)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()

    def quiet_measure(self, traffic, why):
        """(rss kB, fds) with traffic paused and every worker ready."""
        if not traffic.quiesce(why):
            log("warning: client requests still in flight at the %s measurement" % why)
        if not self.wait_for(self.all_ready, 20):
            log("warning: not every worker ready at the %s measurement" % why)
        time.sleep(0.3)
        v = self.server.rss_fds()
        traffic.resume(why)
        return v

    def run(self):
        a = self.args
        rng = random.Random(a.seed)
        workdir = tempfile.mkdtemp(prefix="mediad-soak-")
        log("seed %d, %d s of chaos, %d clients, binary %s, workdir %s" %
            (a.seed, a.seconds, a.clients, a.bin, workdir))
        try:
            self.server = Server(a.bin, workdir, self.extra_env)
        except (RuntimeError, OSError) as e:
            log("cannot start mediad: %s" % e)
            return 2
        srv = self.server
        ok_exit = False
        try:
            if not self.wait_for(self.all_ready, 30):
                log("mediad did not get both workers ready; log: " + srv.log_path)
                return 2
            self.refs = Refs(srv.port)
            sampler = Sampler(self, a.interval)
            traffic = Traffic(self, a.clients, rng.randrange(1 << 30))
            lulls = Lulls(traffic, rng.randrange(1 << 30))
            sampler.start()
            traffic.start()
            lulls.start()
            warm = a.warmup if a.warmup is not None else max(3.0, min(10.0, a.seconds / 8))
            log("warm-up traffic for %.0f s" % warm)
            time.sleep(warm)
            self.prewarm_heap()
            rss0, fds0 = self.quiet_measure(traffic, "start")
            log("start: RSS %d kB, %d fds" % (rss0, fds0))

            t_chaos = time.time()
            chaos = Chaos(self, rng.randrange(1 << 30), t_chaos + a.seconds)
            chaos.start()
            while time.time() < t_chaos + a.seconds:
                time.sleep(0.5)
                if srv.proc.poll() is not None:
                    break
            chaos.stop()
            lulls.stop()

            # end state: everything released, the server must serve again
            for pid in srv.children():
                srv.signal_worker(pid, signal.SIGCONT)
            t_clear = time.time()
            try:
                http_req(srv.port, "DELETE", "/debug/faults", None, AUTH, timeout=5.0)
            except (OSError, http.client.HTTPException):
                pass
            for f in chaos.faults:
                if f.t_clear is None:
                    f.t_clear = t_clear
            alive = srv.proc.poll() is None
            self.checks.add("the supervisor is still running", alive,
                            "" if alive else "exited with %s" % srv.proc.returncode)
            if not alive:
                traffic.stop()
                sampler.stop()
                self.report(chaos, traffic, sampler, lulls, (rss0, fds0), (None, None),
                            t_chaos, t_clear, None, None, None)
                return 1
            t_h = self.wait_for(lambda: http_req(srv.port, "GET", "/health", timeout=2.0)
                                .status == 200 and time.time(), a.end_bound)
            t_all = self.wait_for(lambda: self.all_ready() and time.time(), a.end_bound)
            self.checks.add("/health 200 within %.0f s of the last clear" % a.end_bound,
                            t_h is not None,
                            "after %.2f s" % (t_h - t_clear) if t_h else "never")
            self.checks.add("every worker ready within %.0f s of the last clear" % a.end_bound,
                            t_all is not None,
                            "after %.2f s" % (t_all - t_clear) if t_all else "never")
            bad = []
            for kind in ("image_png", "image_jpeg", "tokenize", "chat", "chat_stream", "speech"):
                path, body, checker = make_request(kind, rng)
                try:
                    r = http_req(srv.port, "POST", path, body, AUTH,
                                 timeout=REQUEST_TIMEOUT + 5)
                    why = checker(r, self.refs) if r.status == 200 else \
                        "%d %r" % (r.status, r.body[:200])
                except (OSError, http.client.HTTPException, ValueError, KeyError) as e:
                    why = "%s: %s" % (type(e).__name__, e)
                if why:
                    bad.append("%s: %s" % (kind, why))
            self.checks.add("after the chaos a request of each kind succeeds", not bad,
                            "; ".join(bad))
            time.sleep(a.settle)
            rss1, fds1 = self.quiet_measure(traffic, "end")
            log("end: RSS %d kB, %d fds" % (rss1, fds1))
            self.metrics_summary = self.summarise_metrics()
            traffic.stop()
            sampler.stop()
            rc = srv.stop(timeout=45)
            self.checks.add("SIGTERM stops mediad with exit code 0", rc == 0,
                            "exit code %s" % rc)
            ok_exit = self.report(chaos, traffic, sampler, lulls, (rss0, fds0), (rss1, fds1),
                                  t_chaos, t_clear, t_h, t_all, rc)
            return 0 if ok_exit else 1
        finally:
            srv.kill()
            if ok_exit and not a.keep:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                log("logs kept in %s" % workdir)

    def report(self, chaos, traffic, sampler, lulls, start, end, t_chaos, t_clear, t_h, t_all,
               rc):
        a, checks, srv = self.args, self.checks, self.server
        recs = traffic.records
        outcomes = collections.Counter(r[4] for r in recs)
        statuses = collections.Counter(r[3] if r[3] is not None else "none" for r in recs)
        lost = [r for r in recs if r[4] in ("lost", "late")]
        wrong = [r for r in recs if r[4] == "wrong_result"]
        bad_err = [r for r in recs if r[4] == "bad_error"]
        answered = len(recs) - len(lost)
        fmt = lambda rs: "; ".join("%.3f %s %s: %s" % (r[0], r[2], r[3], r[5]) for r in rs[:5])
        checks.add("every request got an answer before its deadline (lost = 0)", not lost,
                   fmt(lost))
        er = traffic.early_resets
        checks.add("no connection reset while a client sends its body (answered early, "
                   "body unread)", not er, "%d: %s" % (len(er), "; ".join(
                       "%.3f %s %s (%s)" % e for e in er[:4])) if er else "")
        checks.add("every 200 carried the right result", not wrong, fmt(wrong))
        checks.add("every non-200 is a 429/503/504 JSON error", not bad_err, fmt(bad_err))
        checks.add("chaos machinery worked", not chaos.errors, "; ".join(chaos.errors[:5]))
        analyse_health(sampler.samples, checks)
        stats = collections.defaultdict(list)
        with srv.lock:
            transitions = list(srv.transitions)
        analyse_wedges(chaos.faults, sampler.samples, transitions, a.margin, checks, stats)
        analyse_innocent(chaos.faults, sampler.samples, a.recovery, t_clear, checks)
        annotate_faults(chaos.faults, sampler.samples)
        (rss0, fds0), (rss1, fds1) = start, end
        if rss1 is not None and self.asan:
            log("ASan build: RSS not checked (its quarantine keeps freed memory)")
        elif rss1 is not None:
            checks.add("supervisor RSS flat (growth <= 10 %)", rss1 <= rss0 * 1.10,
                       "%d kB -> %d kB (%+.1f %%)" % (rss0, rss1, (rss1 - rss0) * 100.0 / rss0))
            checks.add("supervisor open fds flat (growth <= 5)", fds1 - fds0 <= 5,
                       "%d -> %d" % (fds0, fds1))
        with srv.lock:
            raw = [l for l in srv.raw_lines if l.strip()]
            levels = dict(srv.levels)
            top = srv.messages.most_common(25)
        checks.add("no non-JSON output on stderr (sanitizer reports, crashes)", not raw,
                   "; ".join(raw[:5]))

        kinds = collections.Counter(f.kind for f in chaos.faults)
        lat = sorted(r[1] - r[0] for r in recs)
        print()
        print("=" * 78)
        print("mediad chaos soak: %d s of chaos, seed %d, %d clients, %d lulls" %
              (a.seconds, a.seed, a.clients, lulls.n))
        print("requests      %d (%s)" % (len(recs), ", ".join(
            "%s %d" % kv for kv in sorted(collections.Counter(r[2] for r in recs).items()))))
        print("abandoned     %d more requests whose client went away on purpose" %
              traffic.abandoned)
        print("answered      %d" % answered)
        print("lost          %d" % len(lost))
        print("outcomes      %s" % ", ".join("%s %d" % kv for kv in sorted(outcomes.items())))
        print("status codes  %s" % ", ".join("%s %d" % kv for kv in sorted(
            statuses.items(), key=lambda kv: str(kv[0]))))
        if lat:
            print("latency       median %.0f ms, p99 %.0f ms, max %.0f ms" % (
                lat[len(lat) // 2] * 1e3, lat[min(len(lat) - 1, int(len(lat) * .99))] * 1e3,
                lat[-1] * 1e3))
        print("faults        %d injected (%s); %d skipped (no ready worker)" % (
            len(chaos.faults), ", ".join("%s %d" % kv for kv in sorted(kinds.items())),
            chaos.skipped))
        if a.verbose:
            for f in chaos.faults:
                print("   +%6.2f s  worker %s %-12s hold %4.1f s  %s" % (
                    f.t_inject - t_chaos, f.wid, f.kind + ("=%s" % f.value if f.value else ""),
                    (f.t_clear or t_clear) - f.t_inject, f.note))
        det = ", ".join("%s n=%d max %.2f s" % (k, len(v), max(v))
                        for k, v in sorted(stats.items()) if v)
        print("detection     %s (bounds: idle %.1f s, from probe %.1f s, busy %.1f s, "
              "margin %.1f s)" % (det or "none", IDLE_BOUND, PROBE_BOUND, BUSY_BOUND,
                                  a.margin))
        print("samples       %d health samples" % len(sampler.samples))
        if rss1 is not None:
            print("RSS           start %d kB, end %d kB (%+.1f %%); max under traffic %d kB" % (
                rss0, rss1, (rss1 - rss0) * 100.0 / rss0,
                max((x[1] for x in sampler.rss_series), default=0)))
            if a.verbose and sampler.rss_series:
                ser = sampler.rss_series
                pts = [ser[int(i * (len(ser) - 1) / 9)] for i in range(10)]
                print("RSS trend     %s (kB under traffic, 10 points)" % " ".join(
                    str(p[1]) for p in pts))
            print("fds           start %d, end %d; max under traffic %d" % (
                fds0, fds1, max((x[2] for x in sampler.rss_series), default=0)))
        if t_h is not None:
            print("end           /health 200 %.2f s after the last clear, all workers ready "
                  "after %.2f s; exit code %s" % (t_h - t_clear,
                                                  (t_all - t_clear) if t_all else -1, rc))
        for line in self.metrics_summary:
            print(line)
        print("log lines     %s" % ", ".join("%s %d" % kv for kv in sorted(levels.items())))
        if a.verbose:
            for k, n in top:
                print("   %5d  %s" % (n, k[:150]))
        print("-" * 78)
        for name, ok, detail in checks.results:
            print("%s  %s%s" % ("PASS" if ok else "FAIL", name,
                                ("\n        " + detail) if detail and (not ok or a.verbose)
                                else (" (%s)" % detail if detail and len(detail) < 70 else "")))
        print("=" * 78)
        print("RESULT: %s" % ("PASS" if checks.ok else "FAIL"))
        sys.stdout.flush()
        return checks.ok


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60, help="duration of the chaos (60)")
    p.add_argument("--bin", default=os.environ.get("MEDIAD_BIN") or
                   os.path.join(HERE, "..", "..", "build", "mediad"),
                   help="mediad binary (MEDIAD_BIN, else build/mediad)")
    p.add_argument("--clients", type=int, default=6, help="client threads (6)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--interval", type=float, default=0.1, help="health sampling period (0.1)")
    p.add_argument("--margin", type=float, default=0.5,
                   help="slack added to every detection bound, seconds (0.5)")
    p.add_argument("--client-margin", type=float, default=5.0,
                   help="client deadline = REQUEST_PROCESSING_TIMEOUT_SECONDS + this (5)")
    p.add_argument("--recovery", type=float, default=6.0,
                   help="a worker with no fault for this long must be ready (6)")
    p.add_argument("--end-bound", type=float, default=15.0,
                   help="after the last clear, /health 200 within this (15)")
    p.add_argument("--warmup", type=float, default=None,
                   help="traffic before the start measurement (default seconds/8, 3..10)")
    p.add_argument("--settle", type=float, default=3.0,
                   help="traffic after recovery before the end measurement (3)")
    p.add_argument("--abandon", type=float, default=0.02,
                   help="fraction of requests whose client goes away before the answer (0.02)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="override a mediad setting (repeatable)")
    p.add_argument("--keep", action="store_true", help="keep the workdir and logs on success")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 31)
    args.bin = os.path.abspath(args.bin)
    if not os.access(args.bin, os.X_OK):
        print("no mediad binary at %s (make, or set MEDIAD_BIN)" % args.bin, file=sys.stderr)
        return 2
    return Soak(args).run()


if __name__ == "__main__":
    sys.exit(main())
