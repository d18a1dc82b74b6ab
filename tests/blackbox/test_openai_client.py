"""The official OpenAI client uploads audio (issue 12).

The openai npm client (7.60.0, pinned in tests/clients/package-lock.json,
installed by scripts/install-deps.sh) sends its multipart body in several
writes; the old form handling took a piece of a part for a repeated field and
answered 400 "form field model is given more than once" to most calls. Here:

- the client's exact request bytes (tests/fixtures/openai-7.60.0-*.http,
  captured once by tests/clients/capture.mjs) are replayed to the server in
  many split patterns, with Content-Length and chunked, and must be answered
  200 every time; the same body with a truly repeated field must be 400
  naming the field in every pattern;
- the client itself transcribes and translates 200 times in a row on the
  mock runner, and transcribes 200 times in a row on the real sphinx runner
  (plus real speech through both routes), every call 200."""
import json
import os
import socket
import subprocess
import time

import pytest

from harness import FAST, Server

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
CLIENTS = os.path.join(ROOT, "tests", "clients")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def load_capture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        raw = f.read()
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    return lines[0], lines[1:], body


def request_bytes(reqline, headers, body, chunks=None):
    """The request as sent: with Content-Length, or chunked with the body
    cut at `chunks` (offsets)."""
    hs = [h for h in headers if not h.lower().startswith((b"content-length:",
                                                         b"transfer-encoding:"))]
    if chunks is None:
        hs.append(b"content-length: %d" % len(body))
        return b"\r\n".join([reqline] + hs) + b"\r\n\r\n" + body
    hs.append(b"transfer-encoding: chunked")
    out, at = [], 0
    for end in list(chunks) + [len(body)]:
        piece = body[at:end]
        at = end
        if piece:
            out.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
    out.append(b"0\r\n\r\n")
    return b"\r\n".join([reqline] + hs) + b"\r\n\r\n" + b"".join(out)


def send_in_pieces(port, data, cuts, pause=0.002):
    """Write data in the pieces cuts[] names, pausing between writes so the
    server reads them separately; return (status, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    at = 0
    for end in list(cuts) + [len(data)]:
        if end > at:
            s.sendall(data[at:end])
            at = end
            time.sleep(pause)
    resp = b""
    while True:
        head_end = resp.find(b"\r\n\r\n")
        if head_end >= 0:
            head = resp[:head_end].decode("latin1")
            clen = [int(l.split(":", 1)[1]) for l in head.split("\r\n")
                    if l.lower().startswith("content-length:")]
            if clen and len(resp) >= head_end + 4 + clen[0]:
                break
        d = s.recv(65536)
        if not d:
            break
        resp += d
    s.close()
    head, _, body = resp.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def split_patterns(data, body_at):
    """Cut lists over the whole request bytes: headers apart from the body,
    every part's header block apart from its data, cuts inside every
    boundary, the first 400 body bytes one at a time, fixed sizes."""
    pats = {"whole": [], "headers then body": [body_at]}
    marks = []
    i = data.find(b"------formdata-undici-")
    while i >= 0:
        marks.append(i)
        i = data.find(b"------formdata-undici-", i + 1)
    pats["inside every boundary"] = sorted({m + k for m in marks for k in (1, 7, 20, 30)})
    hdr_ends = []
    i = data.find(b"\r\n\r\n", body_at)
    while i >= 0:
        hdr_ends.append(i + 4)
        i = data.find(b"\r\n\r\n", i + 1)
    pats["part headers apart from data"] = [body_at] + hdr_ends
    pats["CRLF cut in two"] = [m - 1 for m in marks if m > body_at]
    pats["first 400 body bytes one at a time"] = list(range(body_at, body_at + 400))
    pats["pieces of 1000"] = list(range(1000, len(data), 1000))
    pats["pieces of 7"] = list(range(body_at, body_at + 800, 7))
    return pats


def with_repeated_model(body):
    """The captured body with its model part given a second time."""
    start = body.index(b"------formdata-undici-")
    second = body.index(b"------formdata-undici-", start + 1)
    return body[:second] + body[start:second] + body[second:]


@pytest.fixture(scope="module")
def mock_srv():

    s = Server(dict(FAST, MOCK_LATENCY_MS="1"))
    s.wait_ready()
    yield s
    s.stop()


@pytest.mark.parametrize("capture,route", [
    ("openai-7.60.0-transcription.http", "transcriptions"),
    ("openai-7.60.0-translation.http", "translations")])
def test_captured_request_in_every_split(mock_srv, capture, route):
    reqline, headers, body = load_capture(capture)
    assert reqline == b"POST /v1/audio/%s HTTP/1.1" % route.encode()
    data = request_bytes(reqline, headers, body)
    body_at = data.index(b"\r\n\r\n") + 4
    for name, cuts in split_patterns(data, body_at).items():
        status, rbody = send_in_pieces(mock_srv.port, data, cuts)
        assert status == 200, (name, rbody[:300])
        assert isinstance(json.loads(rbody)["text"], str)
    # chunked transfer encoding, chunk edges inside the boundaries and
    # between part headers and data, sent in pieces that cut chunk headers
    marks = [i for i in range(len(body)) if body.startswith(b"------formdata", i)]
    for chunks in ([m + 5 for m in marks], list(range(1, len(body), 333)), [1, 2, 3]):
        data = request_bytes(reqline, headers, body, chunks)
        head_at = data.index(b"\r\n\r\n") + 4
        status, rbody = send_in_pieces(mock_srv.port, data,
                                       [head_at] + list(range(head_at + 3, head_at + 300, 5)))
        assert status == 200, rbody[:300]
    # a truly repeated field is refused in every split, naming the field
    dup = with_repeated_model(body)
    data = request_bytes(reqline, headers, dup)
    body_at = data.index(b"\r\n\r\n") + 4
    for name, cuts in split_patterns(data, body_at).items():
        status, rbody = send_in_pieces(mock_srv.port, data, cuts)
        assert status == 400, (name, rbody[:300])
        err = json.loads(rbody)
        assert err["error"]["param"] == "model", err
        assert "model is given more than once" in err["error"]["message"], err
    assert mock_srv.get("/health").status == 200


def run_client(port, n, route, wav=None):
    if not os.path.isdir(os.path.join(CLIENTS, "node_modules", "openai")):
        pytest.fail("the openai npm client is not installed: run scripts/install-deps.sh")
    args = ["node", os.path.join(CLIENTS, "openai_audio.mjs"), str(port), str(n), route]
    if wav:
        args.append(wav)
    p = subprocess.run(args, capture_output=True, timeout=600, cwd=CLIENTS)
    assert p.returncode == 0, p.stderr.decode()[-2000:]
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


@pytest.mark.parametrize("route", ["transcriptions", "translations"])
def test_official_client_mock_200_in_a_row(mock_srv, route):
    r = run_client(mock_srv.port, 200, route)
    assert r["errors"] == {} and r["ok"] == 200, r
    assert all(t for t in r["texts"]), r


def test_official_client_sphinx_200_in_a_row(server_factory):
    """200 uploads of a short clip in a row, then the shipped speech clip
    (flite: "please turn off the lights") through both routes, whose every
    answer must be its transcript."""
    s = server_factory(MODEL_RUNNER="sphinx", MODEL_SERVICE="audio")
    r = run_client(s.port, 200, "transcriptions")
    assert r["errors"] == {} and r["ok"] == 200, r
    wav = os.path.join(ROOT, "data", "canary.wav")
    for route in ("transcriptions", "translations"):
        r = run_client(s.port, 10, route, wav)
        assert r["errors"] == {} and r["ok"] == 10, r
        for text in r["texts"]:
            assert "lights" in text.lower(), r
