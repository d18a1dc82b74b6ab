"""A client that goes away cancels its work (HEALTH.md section 9, scenario 19).

A client that disconnects while its request is queued or running must not
leave the work running to its end: the queued request is removed, the running
one is cancelled on its worker (the mock runner stops at its next step), the
slot is free at once, and the request is counted 499 in
mediad_requests_total. Each case shows the 499 in /metrics, the freed slot in
/tt-liveness, and a following request served without waiting for the
abandoned work."""
import json
import socket
import threading
import time

from harness import API_KEY, metric_sum

IMG = "/v1/images/generations"
IMG_BODY = {"prompt": "a lighthouse at dusk", "seed": 7, "num_inference_steps": 4}
CHAT = "/v1/chat/completions"
CHAT_BODY = {"model": "mediad-mock", "messages": [{"role": "user", "content": "Say something."}],
             "max_tokens": 40, "seed": 3, "stream": True}

LATENCY_S = 3.0
# 30 steps of 0.1 s: a cancelled request stops within 0.1 s
ENV = {"MOCK_LATENCY_MS": str(int(LATENCY_S * 1000)), "MOCK_STEPS": "30",
       "CANARY_WAIT_SECONDS": "30", "MAX_BATCH_SIZE": "1"}


def open_request(s, path, body):
    """Send a request on a raw socket and return the socket (not read)."""
    data = json.dumps(body).encode()
    head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (path, API_KEY, len(data))).encode()
    sock = socket.create_connection(("127.0.0.1", s.port), timeout=10)
    sock.sendall(head + data)
    return sock


def code_count(s, route, code):
    return metric_sum(s, "mediad_requests_total", route=route, code=code)


def in_flight(s):
    return s.liveness()["worker_info"]["0"]["in_flight"]


def test_running_request_cancelled(server_factory):
    s = server_factory(ENV)
    sock = open_request(s, IMG, IMG_BODY)
    s.wait_for(lambda: in_flight(s) == 1, timeout=5, what="request running")
    time.sleep(0.3)
    sock.close()
    t0 = time.monotonic()
    s.wait_for(lambda: in_flight(s) == 0 and s.liveness()["queue_size"] == 0, timeout=1,
               interval=0.01, what="slot freed at once")
    assert time.monotonic() - t0 < 1.0
    s.wait_for(lambda: code_count(s, IMG, "499") == 1, timeout=2, what="499 counted")
    assert code_count(s, IMG, "200") == 0
    # the worker stopped the abandoned work at its next step: the next
    # request takes one latency, not the rest of the abandoned one too
    r = s.post(IMG, IMG_BODY, timeout=30)
    assert r.status == 200
    assert r.elapsed < LATENCY_S + 1.0, r.elapsed
    assert s.log_lines(msg="client of %s went away: request cancelled" % IMG)
    # the canary does not count a cancelled request against the worker
    w = s.liveness()["worker_info"]["0"]
    assert w["error_count"] == 0 and w["canary_state"] in ("healthy", "probing")


def test_queued_request_removed(server_factory):
    s = server_factory(ENV)
    res = {}

    def first():
        res["a"] = s.post(IMG, IMG_BODY, timeout=30)

    t = threading.Thread(target=first)
    t0 = time.monotonic()
    t.start()
    s.wait_for(lambda: in_flight(s) == 1, timeout=5, what="first request running")
    sock = open_request(s, IMG, IMG_BODY)
    s.wait_for(lambda: s.liveness()["queue_size"] == 1, timeout=5, what="second one queued")
    sock.close()
    s.wait_for(lambda: s.liveness()["queue_size"] == 0, timeout=1, interval=0.01,
               what="queued request removed at once")
    s.wait_for(lambda: code_count(s, IMG, "499") == 1, timeout=2, what="499 counted")
    # a third request runs right after the first, not after the abandoned one
    r = s.post(IMG, IMG_BODY, timeout=30)
    assert r.status == 200
    assert time.monotonic() - t0 < 2 * LATENCY_S + 1.0
    t.join(30)
    assert res["a"].status == 200
    assert code_count(s, IMG, "200") == 2


def test_streaming_request_cancelled(server_factory):
    s = server_factory(ENV)
    sock = open_request(s, CHAT, CHAT_BODY)
    got = b""
    deadline = time.monotonic() + 10
    while b"data:" not in got and time.monotonic() < deadline:
        got += sock.recv(4096)
    assert got.startswith(b"HTTP/1.1 200"), got[:200]
    assert in_flight(s) == 1
    sock.close()
    s.wait_for(lambda: in_flight(s) == 0, timeout=1, interval=0.01, what="slot freed at once")
    s.wait_for(lambda: code_count(s, CHAT, "499") == 1, timeout=2, what="499 counted")
    assert code_count(s, CHAT, "200") == 0
    # the slot is free, so the next request is dispatched at once. (The mock
    # runner's text generator stops emitting for a cancelled task but still
    # sleeps through its remaining steps, so this request waits behind them
    # on the worker; its image path, above, stops at the next step.)
    body = dict(CHAT_BODY, stream=False)
    r = s.post(CHAT, body, timeout=30)
    assert r.status == 200
    assert r.elapsed < 2 * LATENCY_S + 1.0, r.elapsed
    assert code_count(s, CHAT, "200") == 1
