"""Black-box tests of mediad under hostile clients (issue 8, items 2 and 3).

Every case sends something a broken or malicious client could send and checks
that it gets a bounded 4xx or a closed connection, never a crash, a hang or a
5xx, and that the server keeps serving others throughout: after each case a
/health and a valid image request answer 200. Protocol-level cases use raw
sockets so nothing in a client library tidies the bytes up.

The auth test reads the route table from src/router.c, so a new route that
forgets auth (or a public route that is not documented as public) fails here.

Most cases share one server (MODEL_SERVICE=all, CONNECTION_TIMEOUT_SECONDS=2,
MAX_CONNECTIONS=64); the ones that need other settings start their own."""
import json
import os
import random
import re
import select
import socket
import time
import uuid

import pytest

from harness import (AUTH, API_KEY, FAST, ROOT, assert_json_error, connect, hdr, json_error,
                     start_server, stop_server, wav_bytes)

TIMEOUT = 2          # CONNECTION_TIMEOUT_SECONDS of the shared server
MAX_CONN = 64        # MAX_CONNECTIONS of the shared server
ORG = {"X-TT-Organization": "org-hostile"}
IMAGE = {"prompt": "still alive", "width": 64, "height": 64, "num_inference_steps": 4}
SRC = os.path.join(ROOT, "src")


# --- fixtures and helpers ---------------------------------------------------

READ_TIMEOUT = 3     # REQUEST_HEADER_TIMEOUT_SECONDS and REQUEST_BODY_TIMEOUT_SECONDS
MIN_RATE = 1024      # REQUEST_BODY_MIN_RATE (bytes/s)
SHARED_ENV = dict(FAST, MODEL_SERVICE="all", CONNECTION_TIMEOUT_SECONDS=str(TIMEOUT),
                  MAX_CONNECTIONS=str(MAX_CONN),
                  REQUEST_HEADER_TIMEOUT_SECONDS=str(READ_TIMEOUT),
                  REQUEST_BODY_TIMEOUT_SECONDS=str(READ_TIMEOUT),
                  REQUEST_BODY_MIN_RATE=str(MIN_RATE))


@pytest.fixture(scope="module")
def shared():
    holder = {"server": start_server(SHARED_ENV)}
    try:
        yield holder
    finally:
        stop_server(holder["server"])


@pytest.fixture
def srv(shared):
    """The shared server; a case that killed it fails (still_serving), and the
    next case gets a fresh one instead of a cascade of connection errors."""
    if shared["server"].proc.poll() is not None:
        stop_server(shared["server"])
        shared["server"] = start_server(SHARED_ENV)
    return shared["server"]


def still_serving(s):
    """The server is alive and serves others: /health and a real request."""
    assert s.proc.poll() is None, "mediad exited: " + s.log_text()
    r = s.get("/health", timeout=10)
    assert r.status == 200, (r.status, r.body[:300])
    r = s.post("/v1/images/generations", IMAGE, timeout=30)
    assert r.status == 200, (r.status, r.body[:300])
    assert r.json()["images"]


def read_until_closed(sk, limit):
    """Read until the server closes (EOF or reset) or limit seconds pass:
    (bytes, seconds, closed)."""
    t0 = time.monotonic()
    out = b""
    while True:
        left = limit - (time.monotonic() - t0)
        if left <= 0:
            return out, time.monotonic() - t0, False
        sk.settimeout(left)
        try:
            b = sk.recv(65536)
        except socket.timeout:
            return out, time.monotonic() - t0, False
        except (ConnectionResetError, ConnectionAbortedError):
            return out, time.monotonic() - t0, True
        if not b:
            return out, time.monotonic() - t0, True
        out += b


def exchange(s, data, limit=15):
    """Send raw bytes, read until the server closes: (bytes, seconds, closed)."""
    sk = connect(s)
    try:
        try:
            sk.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer (and close) before reading everything
        return read_until_closed(sk, limit)
    finally:
        sk.close()


def parse_responses(raw):
    """Split raw bytes into HTTP/1.1 responses with a Content-Length or chunked
    body: [(status, [(name, value)], body)]. Stops at an incomplete one."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        assert re.match(rb"HTTP/1\.[01] \d{3}", lines[0]), raw[:200]
        status = int(lines[0].split()[1])
        headers = []
        for line in lines[1:]:
            assert b":" in line, ("malformed response header line", line)
            k, _, v = line.partition(b":")
            headers.append((k.decode("latin-1"), v.strip().decode("latin-1")))
        names = {k.lower(): v for k, v in headers}
        if "content-length" in names:
            n = int(names["content-length"])
            if len(rest) < n:
                break
            body, raw = rest[:n], rest[n:]
        elif names.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size_line, _, rest = rest.partition(b"\r\n")
                n = int(size_line.split(b";")[0], 16)
                body += rest[:n]
                rest = rest[n + 2:]
                if n == 0:
                    break
            raw = rest
        else:
            body, raw = rest, b""
        out.append((status, headers, body))
    return out


def post_raw(s, path, data, headers=None, timeout=30):
    h = dict(AUTH)
    h.update(ORG)
    h["Content-Type"] = "application/json"
    h.update(headers or {})
    return s.request("POST", path, raw=data, headers=h, timeout=timeout)


IMAGE_HEAD = ("POST /v1/images/generations HTTP/1.1\r\nHost: x\r\n"
              "Authorization: Bearer %s\r\nContent-Type: application/json\r\n" % API_KEY).encode()


# --- slowloris ----------------------------------------------------------------

SLOW_REQUESTS = {
    # partial headers
    "headers": b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ",
    # complete headers, part of the declared body
    "body": IMAGE_HEAD + b"Content-Length: 4096\r\n\r\n{\"prompt\":\"",
    # a chunked body whose last chunk never comes
    "chunked": IMAGE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"b\r\n{\"prompt\":\"\r\n",
}


@pytest.mark.parametrize("kind", sorted(SLOW_REQUESTS))
def test_stalled_request_closed_after_connection_timeout(srv, kind):
    """A client that stops mid-request (headers, body, chunked body that never
    ends) is cut after about CONNECTION_TIMEOUT_SECONDS; others are served
    meanwhile."""
    sk = connect(srv)
    try:
        sk.sendall(SLOW_REQUESTS[kind])
        t0 = time.monotonic()
        r = srv.get("/health", timeout=5)
        assert r.status == 200
        r = srv.post("/v1/images/generations", IMAGE)
        assert r.status == 200
        data, _, closed = read_until_closed(sk, 4 * TIMEOUT + 3)
        waited = time.monotonic() - t0
    finally:
        sk.close()
    assert closed, "a stalled %s was kept open %.1f s (CONNECTION_TIMEOUT_SECONDS=%d)" % (
        kind, waited, TIMEOUT)
    assert waited >= TIMEOUT * 0.5, "closed after %.2f s, before the timeout" % waited
    # closed silently or with a 4xx, never a 5xx or a 200
    for status, _, _ in parse_responses(data):
        assert 400 <= status < 500, data[:300]
    still_serving(srv)


def trickle(s, prefix, period, limit):
    """Send prefix, then one more byte every period seconds, until the server
    closes the connection or limit seconds pass: (closed, seconds, answer)."""
    sk = connect(s)
    t0 = time.monotonic()
    try:
        sk.sendall(prefix)
        while time.monotonic() - t0 < limit:
            try:
                sk.sendall(b"a")
            except (BrokenPipeError, ConnectionResetError):
                return True, time.monotonic() - t0, b""
            data, _, closed = read_until_closed(sk, period)
            if closed or data:
                return True, time.monotonic() - t0, data
        return False, time.monotonic() - t0, b""
    finally:
        sk.close()


def test_trickling_client_does_not_block_others(srv):
    """While a slowloris client trickles, other clients are served."""
    sk = connect(srv)
    try:
        sk.sendall(SLOW_REQUESTS["headers"])
        for _ in range(6):
            sk.sendall(b"a")
            time.sleep(0.3)
            r = srv.get("/health", timeout=5)
            assert r.status == 200
        r = srv.post("/v1/images/generations", IMAGE)
        assert r.status == 200
    finally:
        sk.close()
    still_serving(srv)


@pytest.mark.parametrize("kind", sorted(SLOW_REQUESTS))
def test_trickled_request_is_bounded(srv, kind):
    """A request trickled one byte at a time, each within the idle timeout, is
    still cut: headers after REQUEST_HEADER_TIMEOUT_SECONDS, a body when it
    falls under REQUEST_BODY_MIN_RATE after REQUEST_BODY_TIMEOUT_SECONDS. The
    client gets a 408 whose JSON names the setting, and the cut is counted."""
    before = read_timeouts(srv)
    closed, waited, answer = trickle(srv, SLOW_REQUESTS[kind], TIMEOUT / 4, 2 * TIMEOUT + 2)
    assert closed, "a trickled %s was still open after %.1f s" % (kind, waited)
    # bound by design: the deadline plus one tick (FAST's tick) plus margin
    assert waited <= READ_TIMEOUT + 1.5, "cut after %.2f s" % waited
    assert waited >= READ_TIMEOUT * 0.9, "cut after %.2f s, before its deadline" % waited
    responses = parse_responses(answer)
    assert [st for st, _, _ in responses] == [408], answer[:300]
    body = json.loads(responses[0][2])
    setting = "REQUEST_HEADER_TIMEOUT_SECONDS" if kind == "headers" else \
        "REQUEST_BODY_TIMEOUT_SECONDS"
    assert setting in body["detail"] and body["error"]["code"] == "request_timeout", body
    phase = "headers" if kind == "headers" else "body"
    assert read_timeouts(srv)[phase] == before[phase] + 1
    still_serving(srv)


def read_timeouts(s):
    """mediad_http_read_timeouts_total by phase."""
    out = {"headers": 0.0, "body": 0.0}
    for line in s.get("/metrics").body.decode().splitlines():
        for phase in out:
            if line.startswith('mediad_http_read_timeouts_total{phase="%s"}' % phase):
                out[phase] = float(line.split()[-1])
    return out


def test_slow_but_steady_body_is_not_cut(srv):
    """A body that arrives slowly but above REQUEST_BODY_MIN_RATE, for longer
    than REQUEST_BODY_TIMEOUT_SECONDS, is read in full and answered: the
    deadline grows with the bytes received."""
    body = json.dumps(dict(IMAGE, prompt="p" * (8 * MIN_RATE))).encode()
    sk = connect(srv)
    try:
        sk.sendall(IMAGE_HEAD + b"Content-Length: %d\r\n\r\n" % len(body))
        piece = MIN_RATE
        t0 = time.monotonic()
        for off in range(0, len(body), piece):
            sk.sendall(body[off:off + piece])
            time.sleep(0.5)   # 2 x MIN_RATE bytes/s, each gap under the idle timeout
        took = time.monotonic() - t0
        sk.settimeout(30)
        data = sk.recv(65536)   # the status line comes first, in the first segment
    finally:
        sk.close()
    assert took > READ_TIMEOUT, "the upload took %.1f s: too short to test the grace" % took
    assert data.startswith(b"HTTP/1.1 200"), data[:300]


def test_endless_chunked_body_is_cut(server_factory):
    """A chunked body sent at full speed that never ends: past
    MAX_REQUEST_BODY_BYTES it is discarded, and the connection must still end
    (413 or closed) within a bounded time instead of reading forever."""
    s = server_factory(MODEL_SERVICE="all", CONNECTION_TIMEOUT_SECONDS=str(TIMEOUT),
                       MAX_REQUEST_BODY_BYTES="65536")
    piece = b"400\r\n" + b"a" * 1024 + b"\r\n"
    sk = connect(s)
    sk.sendall(IMAGE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    sk.setblocking(False)
    t0 = time.monotonic()
    sent, answer, ended = 0, b"", False
    try:
        while time.monotonic() - t0 < 4 * TIMEOUT + 4 and not ended:
            r, w, _ = select.select([sk], [sk], [], 0.2)
            if r:
                try:
                    b = sk.recv(65536)
                except (ConnectionResetError, ConnectionAbortedError):
                    b = b""
                answer += b
                ended = not b or b"\r\n\r\n" in answer
            elif w:
                try:
                    sent += sk.send(piece)
                except (BrokenPipeError, ConnectionResetError):
                    ended = True
                except BlockingIOError:
                    pass
    finally:
        sk.close()
    waited = time.monotonic() - t0
    assert ended, "an endless chunked body was read for %.1f s (%d MB) without an answer" % (
        waited, sent >> 20)
    for status, _, _ in parse_responses(answer):
        assert status == 413, answer[:300]
    still_serving(s)


# --- many connections -----------------------------------------------------------

def open_many(s, n):
    socks = []
    for _ in range(n):
        sk = socket.socket()
        sk.setblocking(False)
        try:
            sk.connect(("127.0.0.1", s.port))
        except BlockingIOError:
            pass
        except OSError:
            sk.close()
            continue
        socks.append(sk)
    return socks


def test_connection_flood_idle(server_factory):
    """200 connections at once against MAX_CONNECTIONS=64: the server does not
    crash, serves /health once idle ones time out, and accepts connections
    again after the flood (it must not stay deaf once it hit the limit)."""
    s = server_factory(MODEL_SERVICE="all", CONNECTION_TIMEOUT_SECONDS=str(TIMEOUT),
                       MAX_CONNECTIONS=str(MAX_CONN))
    socks = open_many(s, 200)
    try:
        assert len(socks) >= 150
        time.sleep(0.5)
        assert s.proc.poll() is None
        # queued behind the flood, but answered once idle ones time out
        r = s.get("/health", timeout=200 // MAX_CONN * (TIMEOUT + 1) + 10)
        assert r.status == 200
    finally:
        for sk in socks:
            sk.close()
    # after the flood: served at once, again and again
    for _ in range(5):
        r = s.get("/health", timeout=5)
        assert r.status == 200
    still_serving(s)


def test_connection_flood_with_requests(server_factory):
    """200 clients each send a request at once: every one gets a complete
    answer or a cleanly closed connection, nobody hangs, and the server serves
    afterwards."""
    s = server_factory(MODEL_SERVICE="all", CONNECTION_TIMEOUT_SECONDS=str(TIMEOUT),
                       MAX_CONNECTIONS=str(MAX_CONN))
    socks = open_many(s, 200)
    req = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    pending = {sk: b"" for sk in socks}
    unsent = set(socks)
    answered = closed = 0
    deadline = time.monotonic() + 30
    try:
        while pending and time.monotonic() < deadline:
            r, w, _ = select.select(list(pending), list(unsent), [], 0.5)
            for sk in w:
                try:
                    sk.send(req)
                except (BlockingIOError, OSError):
                    pass
                unsent.discard(sk)
            for sk in r:
                try:
                    b = sk.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    b = b""
                if b:
                    pending[sk] += b
                    continue
                data = pending.pop(sk)
                if data:
                    resp = parse_responses(data)
                    assert len(resp) == 1 and resp[0][0] in (200, 503), data[:300]
                    answered += 1
                else:
                    closed += 1
                sk.close()
        assert not pending, "%d clients still waiting after 30 s (answered %d, closed %d)" % (
            len(pending), answered, closed)
        assert answered >= MAX_CONN // 2, (answered, closed)
    finally:
        for sk in socks:
            sk.close()
    for _ in range(5):
        assert s.get("/health", timeout=5).status == 200
    still_serving(s)


# --- protocol level ---------------------------------------------------------------

def test_pipelined_requests_answered_in_order(srv):
    """Several requests in one send on one connection, inference requests
    (suspended while a worker runs them) among them: all answered, in order
    (the X-Request-Id each carries comes back in the same order)."""
    tag = uuid.uuid4().hex[:8].encode()
    body = json.dumps(IMAGE).encode()
    post = IMAGE_HEAD + b"X-Request-Id: p%s-%%d\r\nContent-Length: %d\r\n\r\n%s" % (
        tag, len(body), body)
    reqs = [
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: p%s-%%d\r\n\r\n" % tag,
        b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Request-Id: p%s-%%d\r\n\r\n" % tag,
        post,
        b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Request-Id: p%s-%%d\r\n\r\n" % tag,
        post,
        post,
        b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: p%s-%%d\r\n"
        b"Connection: close\r\n\r\n" % tag,
    ]
    data, _, closed = exchange(srv, b"".join(r % i for i, r in enumerate(reqs)), limit=30)
    assert closed
    resp = parse_responses(data)
    assert [st for st, _, _ in resp] == [200] * len(reqs), [(st, b[:100]) for st, _, b in resp]
    assert [hdr(h, "X-Request-Id") for _, h, _ in resp] == \
        [["p%s-%d" % (tag.decode(), i)] for i in range(len(reqs))]
    for i in (2, 4, 5):
        assert json.loads(resp[i][2])["images"]
    still_serving(srv)


def test_pipelined_after_an_error(srv):
    """An error answered before the request was read to its end (404, 405,
    401) ends the connection: the requests before it are answered in order,
    the error itself carries Connection: close, and nothing hangs."""
    for bad in (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
                b"DELETE /health HTTP/1.1\r\nHost: x\r\n\r\n",
                b"POST /v1/images/generations HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"):
        ok = b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"
        data, _, closed = exchange(srv, ok * 2 + bad + ok * 2, limit=15)
        assert closed
        resp = parse_responses(data)
        statuses = [st for st, _, _ in resp]
        assert statuses[:2] == [200, 200] and 400 <= statuses[2] < 500, statuses
        if len(resp) == 3:  # the server closed after the error: it said so
            assert [v.lower() for v in hdr(resp[2][1], "Connection")] == ["close"], resp[2][1]
        else:
            assert statuses[3:] == [200, 200], statuses
    still_serving(srv)


def test_pipelined_requests_many(srv):
    """50 pipelined requests in one send."""
    data, _, _ = exchange(srv, b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n" * 49 +
                          b"GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    resp = parse_responses(data)
    assert len(resp) == 50 and all(st == 200 for st, _, _ in resp)
    still_serving(srv)


@pytest.mark.parametrize("case", ["one-64k-header", "64k-request-id", "1000-headers",
                                  "64k-url", "64k-method"])
def test_huge_headers(srv, case):
    """Oversized request heads get 431/414/400 or a closed connection."""
    if case == "one-64k-header":
        req = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n"
    elif case == "64k-request-id":
        req = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: " + b"a" * 65536 + b"\r\n\r\n"
    elif case == "1000-headers":
        req = b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-H%d: %s\r\n" % (i, b"v" * 60) for i in range(1000)) + b"\r\n"
    elif case == "64k-url":
        req = b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    else:
        req = b"A" * 65536 + b" /health HTTP/1.1\r\nHost: x\r\n\r\n"
    data, _, closed = exchange(srv, req)
    assert closed
    for status, _, _ in parse_responses(data):
        assert status in (400, 413, 414, 431), data[:300]
    still_serving(srv)


# --- hostile JSON --------------------------------------------------------------

INVALID_UTF8 = {
    "bad-start-byte": b'{"prompt":"a\xff\xfeb"}',
    "in-key": b'{"prompt":"x","\xc3\x28":1}',
    "overlong-slash": b'{"prompt":"\xc0\xaf"}',
    "utf16-surrogate": b'{"prompt":"\xed\xa0\x80"}',
    "truncated-seq": b'{"prompt":"\xe2\x82"}',
    "above-u10ffff": b'{"prompt":"\xf4\x90\x80\x80"}',
    "lone-escape-surrogate": b'{"prompt":"\\ud800"}',
    "latin1-body": '{"prompt":"caf\u00e9"}'.encode("latin-1"),
}


@pytest.mark.parametrize("case", sorted(INVALID_UTF8))
def test_invalid_utf8_in_json(srv, case):
    r = post_raw(srv, "/v1/images/generations", INVALID_UTF8[case])
    assert_json_error(r, {400, 422})
    still_serving(srv)


NUL_CASES = [
    ("/v1/images/generations", b'{"prompt":"a\\u0000b"}', "prompt"),
    ("/v1/images/generations", b'{"prompt":"x","negative_prompt":"\\u0000"}',
     "negative_prompt"),
    ("/v1/chat/completions", b'{"messages":[{"role":"user","content":"hi\\u0000"}]}',
     "messages[0].content"),
    ("/v1/audio/speech", b'{"input":"\\u0000"}', "input"),
    ("/v1/jobs", b'{"model":"m","dataset":{"rows":["a\\u0000b"]}}', "dataset"),
]


@pytest.mark.parametrize("path,body,param", NUL_CASES, ids=[c[2] for c in NUL_CASES])
def test_nul_in_json_strings(srv, path, body, param):
    """\\u0000 inside a JSON string: 422 naming the field (validate.c's rule),
    not a parser error that leaks jansson's flag names."""
    r = post_raw(srv, path, body)
    b = assert_json_error(r, 422, param=param)
    assert "JSON_ALLOW_NUL" not in b["error"]["message"]
    still_serving(srv)


def test_nul_in_json_key(srv):
    r = post_raw(srv, "/v1/images/generations", b'{"prompt":"x","a\\u0000b":1}')
    assert_json_error(r, {400, 422})
    still_serving(srv)


OUT_OF_RANGE = [
    # (body, statuses, param when 422)
    (b'{"prompt":"x","seed":1e400}', {400, 422}, "seed"),
    (b'{"prompt":"x","guidance_scale":-1e400}', {400, 422}, "guidance_scale"),
    (b'{"prompt":"x","seed":-1}', {422}, "seed"),
    (b'{"prompt":"x","seed":1180591620717411303424}', {400, 422}, "seed"),   # 2**70
    (b'{"prompt":"x","seed":18446744073709551616}', {400, 422}, "seed"),     # 2**64
    (b'{"prompt":"x","seed":"18446744073709551616"}', {422}, "seed"),
    (b'{"prompt":"x","width":1180591620717411303424}', {400, 422}, "width"),
    (b'{"prompt":"x","num_inference_steps":-1}', {422}, "num_inference_steps"),
    (b'{"prompt":"x","num_inference_steps":9223372036854775807}', {422},
     "num_inference_steps"),
    (b'{"prompt":"x","num_inference_steps":-9223372036854775808}', {422},
     "num_inference_steps"),
    (b'{"prompt":"x","num_inference_steps":1e18}', {422}, "num_inference_steps"),
    (b'{"prompt":"x","image_quality":1e-400}', {400, 422}, "image_quality"),
    (b'{"prompt":"x","guidance_scale":NaN}', {400}, None),
    (b'{"prompt":"x","guidance_scale":Infinity}', {400}, None),
    (b'{"prompt":"x","number_of_images":4.0000000001}', {422}, "number_of_images"),
]


@pytest.mark.parametrize("body,statuses,param", OUT_OF_RANGE,
                         ids=[c[0].decode()[14:60] for c in OUT_OF_RANGE])
def test_numbers_out_of_range(srv, body, statuses, param):
    """Out-of-range numbers: 422 naming the field when the parser reads them,
    400 naming the problem when jansson cannot hold them (1e400, 2**70)."""
    r = post_raw(srv, "/v1/images/generations", body)
    b = assert_json_error(r, statuses)
    if r.status == 422:
        assert b["error"]["param"] == param, b
    still_serving(srv)


def test_deeply_nested_json(srv):
    """100000 levels of nesting: 400 at once (the parser's depth limit), no
    crash, no stack exhaustion."""
    for body in (b"[" * 100000, b'{"a":' * 100000, b'{"prompt":"x","messages":' + b"[" * 100000,
                 b"[" * 100000 + b"]" * 100000):
        t0 = time.monotonic()
        r = post_raw(srv, "/v1/images/generations", body)
        assert_json_error(r, 400)
        assert time.monotonic() - t0 < 10
    # nesting the parser accepts but the rules refuse
    deep = b'{"model":"m","dataset":' + b'{"a":' * 400 + b"1" + b"}" * 400 + b"}"
    r = post_raw(srv, "/v1/jobs", deep)
    assert r.status in (201, 400, 422), (r.status, r.body[:300])
    if r.status == 201:  # a nested dataset object is accepted as is: cancel the job
        jid = r.json()["id"]
        r = srv.request("POST", "/v1/jobs/%s/cancel" % jid, headers=dict(AUTH, **ORG))
        assert r.status in (200, 409), r.body[:300]
    still_serving(srv)


def test_duplicate_keys(srv):
    for body in (b'{"prompt":"x","prompt":"y"}',
                 b'{"prompt":"x","seed":1,"seed":1}',
                 b'{"prompt":"x","extra":{"a":1,"a":2}}'):
        r = post_raw(srv, "/v1/images/generations", body)
        assert_json_error(r, 400, words=["duplicate"])
    r = post_raw(srv, "/v1/chat/completions",
                 b'{"messages":[{"role":"user","role":"system","content":"x"}]}')
    assert_json_error(r, 400, words=["duplicate"])
    still_serving(srv)


# --- multipart -----------------------------------------------------------------

def wav(n=800, rate=8000):
    return wav_bytes([(i * 37) % 2000 - 1000 for i in range(n)], rate)


def multipart(parts, boundary):
    out = []
    for name, filename, value in parts:
        disp = 'form-data; name="%s"' % name
        if filename:
            disp += '; filename="%s"' % filename
        head = "--%s\r\nContent-Disposition: %s\r\n" % (boundary, disp)
        if filename:
            head += "Content-Type: audio/wav\r\n"
        out.append(head.encode() + b"\r\n" + value + b"\r\n")
    out.append(("--%s--\r\n" % boundary).encode())
    return b"".join(out)


def post_multipart(s, body, ctype, path="/v1/audio/transcriptions"):
    h = dict(AUTH)
    h["Content-Type"] = ctype
    return s.request("POST", path, raw=body, headers=h, timeout=30)


def test_multipart_duplicate_fields(srv):
    """A form field or the file given twice is refused (400 naming the
    problem), not silently concatenated."""
    b = "dupb" + uuid.uuid4().hex
    body = multipart([("file", "a.wav", wav()), ("language", None, b"en"),
                      ("language", None, b"fr")], b)
    r = post_multipart(srv, body, "multipart/form-data; boundary=" + b)
    assert_json_error(r, {400, 422}, words=["language"])
    body = multipart([("file", "a.wav", wav()), ("file", "b.wav", wav())], b)
    r = post_multipart(srv, body, "multipart/form-data; boundary=" + b)
    assert_json_error(r, {400, 422}, words=["file"])
    still_serving(srv)


def test_multipart_part_without_name(srv):
    """A part whose Content-Disposition has no name (or that has no
    Content-Disposition at all): a 400, not a crash of the server (the form
    callback used to strcmp the NULL name libmicrohttpd passes for it)."""
    b = "noname" + uuid.uuid4().hex
    for head in (b"Content-Type: text/plain\r\n", b"Content-Disposition: form-data\r\n",
                 b'Content-Disposition: form-data; filename="a.wav"\r\n'):
        body = (b"--" + b.encode() + b"\r\n" + head + b"\r\nhello\r\n" +
                multipart([("file", "a.wav", wav())], b))
        r = post_multipart(srv, body, "multipart/form-data; boundary=" + b)
        assert_json_error(r, {400, 422})
        assert srv.proc.poll() is None, "mediad exited: " + srv.log_text()
    still_serving(srv)


def test_multipart_fuzz(srv):
    """Black-box fuzzing of the multipart path (libmicrohttpd's post processor
    and mediad's form handling): 150 mutated uploads, each answered with 200
    or a JSON 4xx, never a 5xx or a hang; the server serves afterwards."""
    rng = random.Random(8)
    b = "fuzzb" + uuid.uuid4().hex[:12]
    base = multipart([("response_format", None, b"json"), ("language", None, b"en"),
                      ("file", "a.wav", wav(400))], b)
    ctypes = ["multipart/form-data; boundary=" + b, 'multipart/form-data; boundary="%s"' % b,
              "multipart/form-data", "multipart/form-data; boundary=",
              "multipart/form-data; boundary=" + "x" * 300, "multipart/form-data; charset=utf-8",
              "multipart/form-data; boundary=" + b + "; boundary=other"]
    seen = {}
    for i in range(150):
        body = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(7)
            pos = rng.randrange(len(body) + 1)
            if op == 0:    # truncate
                del body[pos:]
            elif op == 1:  # flip bytes
                for _ in range(rng.randint(1, 8)):
                    if body:
                        body[rng.randrange(len(body))] = rng.randrange(256)
            elif op == 2:  # insert a boundary or a header fragment
                body[pos:pos] = rng.choice([
                    b"\r\n--" + b.encode() + b"\r\n", b"--" + b.encode() + b"--",
                    b'Content-Disposition: form-data; name="file"; filename="x"\r\n',
                    b'Content-Disposition: form-data; name="' + b"n" * 5000 + b'"\r\n\r\n',
                    b"\r\n\r\n", b"\x00" * 16, b"\xff\xfe\xfd",
                    b'Content-Disposition: form-data; name="stream"\r\n\r\ntrue\r\n'])
            elif op == 3:  # duplicate a slice
                end = min(len(body), pos + rng.randint(1, 400))
                body[pos:pos] = body[pos:end]
            elif op == 4:  # drop a slice
                del body[pos:pos + rng.randint(1, 200)]
            elif op == 5:  # CRLF to LF
                body = bytearray(bytes(body).replace(b"\r\n", b"\n", rng.randint(1, 5)))
            else:          # junk at the end
                body += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        ctype = ctypes[0] if rng.random() < 0.7 else rng.choice(ctypes)
        r = post_multipart(srv, bytes(body), ctype)
        seen[r.status] = seen.get(r.status, 0) + 1
        assert r.status == 200 or 400 <= r.status < 500, (i, r.status, r.body[:300])
        if r.status != 200:
            json_error(r.status, r.body, r.status)
    # the mutations reach both outcomes: some uploads still parse, most do not
    assert seen.get(200) and sum(v for k, v in seen.items() if k != 200), seen
    still_serving(srv)


# --- paths and headers ------------------------------------------------------------

TRAVERSAL = [
    "/v1/videos/generations/../../etc/passwd",
    "/v1/videos/generations/..%2F..%2Fetc%2Fpasswd",
    "/v1/videos/generations/%2e%2e/%2e%2e/etc/passwd",
    "/v1/videos/generations/%2e%2e",
    "/v1/videos/generations/..",
    "/v1/videos/generations/%2e%2e%2f%2e%2e%2fetc%2fpasswd/download",
    "/v1/videos/generations/../../../../etc/passwd/download",
    "/video/generations/..%2f..%2fetc%2fpasswd",
    "/v1/videos/generations/" + "a" * 79,
    "/v1/videos/generations/" + "a" * 80,
    "/v1/videos/generations/" + "a" * 5000,
    "/v1/videos/generations/" + "a" * 5000 + "/download",
    "/v1/videos/generations/job%00x",
    "/v1/videos/generations/%ff%fe",
    "/v1/videos/generations/caf%C3%A9",
    "/v1/videos/generations/" + "a" * 197 + "%C3%A9",
    "/v1/jobs/../../etc/passwd",
    "/v1/jobs/%2e%2e%2f%2e%2e%2fetc%2fpasswd/logs",
    "/v1/jobs/" + "b" * 5000 + "/metrics",
    "/%ff",
    "/" + "x" * 198 + "%C3%A9",
]


@pytest.mark.parametrize("path", TRAVERSAL, ids=range(len(TRAVERSAL)))
def test_path_traversal_in_job_ids(srv, path):
    """Job ids that try to climb out, are huge, or hold odd bytes: a JSON
    404 whose body is valid UTF-8 JSON."""
    h = dict(AUTH, **ORG)
    for method in ("GET", "POST"):
        req = ("%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "X-TT-Organization: org-hostile\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
               % (method, path, API_KEY)).encode()
        data, _, _ = exchange(srv, req)
        resp = parse_responses(data)
        assert len(resp) == 1, data[:300]
        status, _, body = resp[0]
        if status in (405, 414, 431):
            continue
        json_error(status, body, 404)
    assert srv.get("/health", headers=h).status == 200
    still_serving(srv)


INJECTION = {
    "obs-fold": b"X-Request-Id: evil\r\n Set-Cookie: pwned=1\r\n",
    "bare-cr": b"X-Request-Id: evil\rSet-Cookie: pwned=1\r\n",
    "bare-lf": b"X-Request-Id: evil\nSet-Cookie: pwned=1\r\n",
    "encoded-crlf": b"X-Request-Id: evil%0d%0aSet-Cookie:%20pwned=1\r\n",
    "nul": b"X-Request-Id: evil\x00Set-Cookie: pwned=1\r\n",
    "long": b"X-Request-Id: " + b"r" * 8000 + b"\r\n",
    "65-chars": b"X-Request-Id: " + b"r" * 65 + b"\r\n",
    "non-ascii": b"X-Request-Id: caf\xc3\xa9\xff\r\n",
    "two-ids": b"X-Request-Id: first\r\nX-Request-Id: second\r\n",
    "quotes": b'X-Request-Id: "><script>alert(1)</script>\r\n',
}


@pytest.mark.parametrize("case", sorted(INJECTION))
def test_request_id_header_injection(srv, case):
    """A malicious X-Request-Id is not echoed verbatim, and the response
    headers stay intact: one X-Request-Id of safe characters, no injected
    header, a Content-Length that matches the body."""
    for path in ("/health", "/nope"):
        req = (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + INJECTION[case] +
               b"Connection: close\r\n\r\n")
        data, _, closed = exchange(srv, req)
        assert closed
        head = data.partition(b"\r\n\r\n")[0]
        for line in head.split(b"\r\n")[1:]:
            assert re.fullmatch(rb"[A-Za-z0-9-]+: [\x20-\x7e]*", line), line
        resp = parse_responses(data)
        assert len(resp) == 1, data[:300]
        status, headers, body = resp[0]
        assert not hdr(headers, "Set-Cookie"), headers
        if status == 400:
            continue  # refused by the HTTP parser: fine
        assert status == (200 if path == "/health" else 404), data[:300]
        rids = hdr(headers, "X-Request-Id")
        assert len(rids) == 1, headers
        assert re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", rids[0]), rids
        # what arrives after a CR, LF or NUL is never part of the echoed id
        assert "Set-Cookie" not in rids[0] and "pwned" not in rids[0], rids
        assert len(body) == int(hdr(headers, "Content-Length")[0])
        json.loads(body)
    still_serving(srv)


# --- hostile settings ---------------------------------------------------------------

def test_setting_with_invalid_utf8(server_factory):
    """MODEL_NAME that is not UTF-8 (a Latin-1 environment): either a startup
    error naming the variable, or a server that serves valid JSON. Never a
    worker crash loop."""
    try:
        s = server_factory(wait=False, MODEL_SERVICE="all", MODEL_NAME="caf\udce9")
    except RuntimeError as e:  # exited before listening: the refusal names the variable
        assert "MODEL_NAME" in str(e), e
        return
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if s.proc.poll() is not None:
            assert s.proc.returncode != 0
            assert "MODEL_NAME" in s.log_text(), s.log_text()
            return
        try:
            if s.get("/health", timeout=2).status == 200:
                break
        except OSError:
            pass
        time.sleep(0.1)
    else:
        raise AssertionError("neither ready nor refused after 15 s:\n" + s.log_text())
    for path in ("/v1/models", "/tt-liveness"):
        r = s.get(path)
        assert r.status == 200
        json.loads(r.body.decode("utf-8"))
    r = s.get("/v1/config", headers=AUTH)
    assert r.status == 200
    json.loads(r.body.decode("utf-8"))
    assert not [l for l in s.logs if "raw" in l], "log lines that are not JSON"
    still_serving(s)


# --- auth over the route table (issue 8 item 3) ------------------------------------

# API.md: the only routes that answer without the key.
PUBLIC = {"/health", "/readyz", "/livez", "/startupz", "/tt-liveness", "/metrics",
          "/v1/models", "/v2/health/ready", "/v2/health/live"}


def route_table():
    """The entries of router_routes in src/router.c, parsed from the source:
    [{path, method, services, auth, handler, task, metric, legacy, job_type}]."""
    with open(os.path.join(SRC, "router.c")) as f:
        text = f.read()
    m = re.search(r"const struct route router_routes\[\]\s*=\s*\{(.*?)\n\};", text, re.S)
    assert m, "router_routes not found in src/router.c"
    table = re.sub(r"/\*.*?\*/", "", m.group(1), flags=re.S)
    table = re.sub(r"//[^\n]*", "", table)
    # top-level entries: count braces so an entry in a new shape is not missed
    entries, depth, start = [], 0, None
    for i, c in enumerate(table):
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                entries.append(table[start:i + 1])
    pat = re.compile(r'\{\s*"([^"]+)"\s*,\s*(M_[A-Z]+)\s*,\s*(\w+)\s*,\s*([01])\s*,\s*(H_\w+)\s*,'
                     r'\s*(TASK_\w+)\s*,\s*("[^"]*"|NULL)\s*,\s*("[^"]*"|NULL)\s*,\s*(\w+)\s*\}')
    routes = []
    for e in entries:
        mm = pat.fullmatch(e.strip())
        assert mm, "route entry in a shape this test does not read: %s" % e
        legacy = mm.group(8)
        routes.append({"path": mm.group(1), "method": mm.group(2)[2:], "services": mm.group(3),
                       "auth": mm.group(4) == "1", "handler": mm.group(5),
                       "legacy": None if legacy == "NULL" else legacy.strip('"')})
    return routes


ROUTES = route_table()


def concrete(path):
    return path.replace("{id}", "job-dummy-0123")


def test_route_table_parsed():
    """The parse matches the table: every entry read, the routes API.md lists
    are there."""
    assert len(ROUTES) >= 30
    paths = {r["path"] for r in ROUTES}
    for p in ("/health", "/v1/images/generations", "/v1/jobs/{id}/cancel", "/debug/faults",
              "/tt-reset-device", "/tt-deep-reset", "/v1/videos/generations/{id}/download"):
        assert p in paths, p
    assert len([r for r in ROUTES if r["auth"]]) >= 25


def test_public_routes_are_only_the_documented_ones():
    """A route without auth must be one API.md lists as public: a new route
    that forgets auth fails here."""
    for r in ROUTES:
        if not r["auth"]:
            assert r["path"] in PUBLIC, "route %s %s has no auth" % (r["method"], r["path"])
            assert r["method"] == "GET", r
            assert r["legacy"] is None, r
    for p in ("/debug/faults", "/tt-reset-device", "/tt-deep-reset", "/v1/config"):
        assert all(r["auth"] for r in ROUTES if r["path"] == p), p


@pytest.fixture(scope="module")
def auth_srv():
    s = start_server(dict(FAST, MODEL_SERVICE="all", ENABLE_FAULT_INJECTION="true"))
    try:
        yield s
    finally:
        stop_server(s)


BAD_KEYS = [None, "Bearer wrong-key", "Bearer " + API_KEY + "x", "Bearer " + API_KEY[:-1],
            "Basic " + API_KEY, API_KEY, "Bearer", "Bearer  ", "Bearer \t" + API_KEY + "\t"]


def auth_cases():
    out = []
    for r in ROUTES:
        if not r["auth"]:
            continue
        for path in filter(None, (r["path"], r["legacy"])):
            out.append((r["method"], path))
            if r["method"] == "GET":
                out.append(("HEAD", path))
    return out


AUTH_CASES = auth_cases()


@pytest.mark.parametrize("method,path", AUTH_CASES,
                         ids=["%s %s" % c for c in AUTH_CASES])
def test_protected_route_needs_the_key(auth_srv, method, path):
    """Every route with auth=1 (and its legacy alias): 401 JSON without the
    key and with any wrong key, before anything else runs; training routes
    answer 401 with or without X-TT-Organization."""
    pid = auth_srv.worker_pid()
    url = concrete(path)
    body = b'{"worker":"0","fault":"crash"}' if path == "/debug/faults" else b"{}"
    if path.startswith("/tt-"):
        url += "?device_id=0"
    for key in BAD_KEYS:
        for org in (ORG, {}):
            h = dict(org)
            if key is not None:
                h["Authorization"] = key
            if method == "POST":
                h["Content-Type"] = "application/json"
            r = auth_srv.request(method, url, raw=body if method == "POST" else None, headers=h)
            assert r.status == 401, (method, url, key, org, r.status, r.body[:200])
            if method == "HEAD":
                continue
            b = json_error(r.status, r.body, 401)
            assert b["detail"] == "Invalid or missing API Key", b
            assert (r.header("Content-Type") or "").startswith("application/json")
    # nothing behind the 401s ran: no fault injected, no worker restarted
    info = auth_srv.liveness()["worker_info"]["0"]
    assert info["pid"] == pid and info["restart_count"] == 0, info
    # with the key (and the organization) the route is reached: not a 401
    if path not in ("/tt-deep-reset", "/tt-reset-device", "/debug/faults"):
        h = dict(AUTH, **ORG)
        if method == "POST":
            h["Content-Type"] = "application/json"
        r = auth_srv.request(method, concrete(path), raw=b"{}" if method == "POST" else None,
                             headers=h)
        assert r.status != 401, (method, path, r.body[:200])
        assert r.status < 500, (method, path, r.status, r.body[:200])


@pytest.mark.parametrize("path", sorted({r["path"] for r in ROUTES if not r["auth"]}))
def test_public_route_needs_no_key(auth_srv, path):
    for key in (None, "Bearer wrong-key", "Basic x"):
        h = {} if key is None else {"Authorization": key}
        r = auth_srv.get(path, headers=h)
        assert r.status == 200, (path, key, r.status, r.body[:200])


def test_fault_routes_need_key_and_flag(server_factory, auth_srv):
    """With the key, /debug/faults works only with ENABLE_FAULT_INJECTION;
    without the flag it does not exist (404), key or not."""
    r = auth_srv.request("DELETE", "/debug/faults", headers=AUTH)
    assert r.status in (200, 204), (r.status, r.body[:200])
    s = server_factory(MODEL_SERVICE="all")
    for h in ({}, AUTH):
        for method in ("POST", "DELETE"):
            r = s.request(method, "/debug/faults", headers=h,
                          raw=b'{"worker":"0","fault":"crash"}' if method == "POST" else None)
            assert r.status == 404, (method, h, r.status)
    assert s.liveness()["worker_info"]["0"]["restart_count"] == 0
