"""Black-box tests of recovery (HEALTH.md section 6 and section 9 scenarios
11-13): with the default CANARY_ON_DEAD=restart a worker that wedges in the
middle of a request, or dies, costs only the requests that were on it: they
get a JSON 503/504 at once (never a hang), the worker is killed and
respawned under a restart budget, the other workers keep serving, and the
server serves again after the warmup. Also the maintenance routes
/tt-reset-device and /tt-deep-reset and RESET_DEVICE_COMMAND, and the warmup
watchdog: a worker that never finishes warming up (first start or a respawn)
is dead in warmup after WORKER_WARMUP_TIMEOUT_SECONDS and CANARY_ON_DEAD acts.

Wedges are real: the hang_run fault blocks the worker's execution thread on
the real code path, SIGSTOP freezes the whole process, SIGKILL kills it.
Timing assertions are only bounds that hold by design (the progress budget
plus a tick, plus MARGIN seconds for this shared machine)."""
import datetime
import os
import re
import signal
import threading
import time

import pytest

from harness import (AUTH, FAST, Call, assert_json_error, infer, inject, metrics, msum,
                     wait_all_ready, winfo)

WAIT = float(FAST["CANARY_WAIT_SECONDS"])
TIMEOUT = float(FAST["CANARY_PROBE_TIMEOUT_SECONDS"])
TICK = float(FAST["CANARY_TICK_SECONDS"])
MISSES = int(FAST["CANARY_DEAD_MISSES"])
MARGIN = 1.5
PROGRESS = 1.5                       # CANARY_PROGRESS_TIMEOUT_SECONDS of these tests
STALL_BOUND = PROGRESS + TICK        # HEALTH.md 9.11: the client's answer within this
DETECT_BOUND = WAIT + MISSES * (TIMEOUT + TICK) + TICK
RECOVER_WAIT = 20                    # generous wait for restart + warmup (not asserted)
WARMUP_TIMEOUT = 2.0                 # WORKER_WARMUP_TIMEOUT_SECONDS of the warmup tests
WARMUP_BOUND = WARMUP_TIMEOUT + TICK  # a worker not READY by then is dead in warmup
FIRST_BACKOFF = 0.1                  # restart backoff with no restart in the window


# --- helpers ------------------------------------------------------------------

def wait_restarted(s, wid, old_pid, count=1, timeout=RECOVER_WAIT):
    """Worker wid runs a new process, is ready, and has restarted count times."""
    def ok():
        w = winfo(s, wid)
        return (w["restart_count"] == count and w["pid"] not in (0, old_pid)
                and w["is_ready"] and w["state"] == "ready")
    s.wait_for(ok, timeout, what="worker %s restarted (%d) and ready" % (wid, count))


def cont(s, pid):
    """SIGCONT pid if it is still one of s's workers (not a reused pid)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        if ppid == s.proc.pid:
            os.kill(pid, signal.SIGCONT)
    except (FileNotFoundError, ProcessLookupError):
        pass


def recovery_env(**kw):
    env = {"ENABLE_FAULT_INJECTION": "true", "CANARY_PROGRESS_TIMEOUT_SECONDS": PROGRESS}
    env.update(kw)
    return env


def assert_restarted_for_canary(s, wid="0"):
    m = metrics(s)
    assert msum(m, "mediad_worker_restarts_total", worker=wid, reason="canary_dead") == 1, \
        [x for x in m if x[0] == "mediad_worker_restarts_total"]
    dead = [l for l in s.log_lines(event="canary_transition", to="dead")]
    assert dead, "the worker was declared dead before the restart"


# --- scenario 11: hang in the middle of a request -------------------------------

def test_hang_mid_request_answers_fast_and_restarts(server_factory):
    s = server_factory(recovery_env())
    pid = s.worker_pid()
    inject(s, "0", "hang_run", count=1)
    r = infer(s, timeout=60)
    print("hang_run: client answered %d after %.3f s (bound %.2f s + %.1f)"
          % (r.status, r.elapsed, STALL_BOUND, MARGIN))
    body = assert_json_error(r, (503, 504))
    assert "worker 0" in body["detail"], body
    assert r.elapsed <= STALL_BOUND + MARGIN
    assert r.elapsed >= PROGRESS - 0.05, "answered before the progress budget ran out"
    t0 = time.monotonic()
    wait_restarted(s, "0", pid)
    print("hang_run: worker restarted and ready %.3f s after the client's answer"
          % (time.monotonic() - t0))
    assert_restarted_for_canary(s)
    s.wait_ready()
    r = infer(s)
    assert r.status == 200, r.body
    w = winfo(s)
    assert w["restart_count"] == 1 and w["misses"] == {"shallow": 0, "deep": 0, "progress": 0}


def test_sigstop_mid_request_answers_fast_and_restarts(server_factory):
    s = server_factory(recovery_env(MOCK_LATENCY_MS=3000, MOCK_STEPS=30))
    pid = s.worker_pid()
    call = Call(lambda: infer(s, timeout=60))
    s.wait_for(lambda: winfo(s)["in_flight"] == 1, 5, what="request in flight")
    try:
        os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        r = call.get(60)
        elapsed = call.done_at - t0
        print("SIGSTOP mid-request: client answered %d %.3f s after the stop "
              "(bound %.2f s + %.1f)" % (r.status, elapsed, STALL_BOUND, MARGIN))
        assert_json_error(r, (503, 504))
        assert elapsed <= STALL_BOUND + MARGIN
        # the last progress step was at most one step (0.1 s) before the stop
        assert elapsed >= PROGRESS - 0.1 - 0.05
        wait_restarted(s, "0", pid)
        print("SIGSTOP mid-request: restarted and ready %.3f s after the stop"
              % (time.monotonic() - t0))
    finally:
        cont(s, pid)
    assert_restarted_for_canary(s)
    s.wait_ready()
    assert infer(s).status == 200


def test_health_is_not_200_while_a_stalled_worker_refuses_work(server_factory):
    # after a stall (requests failed fast, worker out of rotation) until the
    # restart: whenever /health says 200, an inference request is served
    # (HEALTH.md 5: "serving" -> 200 and served; otherwise 503)
    s = server_factory(recovery_env())
    pid = s.worker_pid()
    inject(s, "0", "hang_run", count=1)
    assert infer(s, timeout=60).status in (503, 504)
    lies = []
    polls = 0

    def restarted():
        nonlocal polls
        polls += 1
        h = s.get("/health").status
        if h == 200:
            r = infer(s, timeout=10)
            if r.status != 200:
                lies.append((round(time.monotonic() - t0, 2), r.status, r.json()["detail"]))
        w = winfo(s)
        return w["pid"] not in (0, pid) and w["is_ready"]

    t0 = time.monotonic()
    s.wait_for(restarted, RECOVER_WAIT, what="restart")
    assert not lies, "/health 200 while requests were refused (%d of %d polls): %s" \
        % (len(lies), polls, lies[:3])


# --- scenario 12: SIGKILL ---------------------------------------------------------

def test_sigkill_fails_inflight_at_once_and_the_other_worker_serves(server_factory):
    s = server_factory(recovery_env(DEVICE_IDS="(0),(1)", MOCK_LATENCY_MS=1000, MOCK_STEPS=10))
    wait_all_ready(s, 2)
    pid0, pid1 = s.worker_pid("0"), s.worker_pid("1")
    calls = [Call(lambda: infer(s, timeout=30)) for _ in range(2)]
    s.wait_for(lambda: all(w["in_flight"] == 1 for w in s.liveness()["worker_info"].values()),
               5, what="one request on each worker")
    os.kill(pid0, signal.SIGKILL)
    t0 = time.monotonic()
    # traffic during the restart of worker 0: all served by worker 1
    stop = threading.Event()
    results = []

    def client():
        while not stop.is_set():
            try:
                results.append(infer(s, timeout=30).status)
            except Exception as e:  # a hang or a reset is a failure too
                results.append(repr(e))

    clients = [threading.Thread(target=client, daemon=True) for _ in range(2)]
    health = []
    try:
        rs = sorted((c.get(30) for c in calls), key=lambda r: r.status)
        killed = [c for c in calls if c.result.status != 200]
        assert [r.status for r in rs] == [200, 503], [(r.status, r.body) for r in rs]
        body = assert_json_error(rs[1], (503,))
        assert "worker 0" in body["detail"], body
        seen = killed[0].done_at - t0
        print("SIGKILL: in-flight request answered 503 %.3f s after the kill" % seen)
        assert seen < MARGIN, "a dead process is seen at once (SIGCHLD), not by a probe"
        for c in clients:
            c.start()

        def back():
            health.append(s.get("/health").status)
            w = winfo(s, "0")
            return w["pid"] not in (0, pid0) and w["is_ready"] and len(results) >= 6

        s.wait_for(back, RECOVER_WAIT, what="worker 0 back and traffic served")
        print("SIGKILL: worker 0 back after %.3f s; %d requests served meanwhile"
              % (time.monotonic() - t0, len(results)))
    finally:
        stop.set()
        for c in clients:
            if c.is_alive() or c.ident:
                c.join(30)
    assert results and all(x == 200 for x in results), results
    assert all(h == 200 for h in health), health
    info = s.liveness()["worker_info"]
    assert info["0"]["restart_count"] == 1
    assert info["1"]["restart_count"] == 0 and info["1"]["pid"] == pid1
    m = metrics(s)
    assert msum(m, "mediad_worker_restarts_total", worker="0", reason="crash") == 1
    assert msum(m, "mediad_worker_restarts_total", worker="1") == 0


# --- scenario 13: restart budget exhausted ------------------------------------------

@pytest.mark.parametrize("how", ["sigkill", "fault_crash"])
def test_restart_budget_exhausted_stays_dead_and_livez_503(server_factory, how):
    s = server_factory(recovery_env(MAX_WORKER_RESTART_COUNT=1))

    def kill_worker():
        pid = s.worker_pid()
        if how == "sigkill":
            os.kill(pid, signal.SIGKILL)
        else:
            inject(s, "0", "crash")  # the next probe or task crashes the worker
        return pid

    pid = kill_worker()
    wait_restarted(s, "0", pid, count=1)
    assert s.get("/livez").status == 200
    kill_worker()
    s.wait_for(lambda: winfo(s)["state"] == "failed", DETECT_BOUND + MARGIN + 3,
               what="worker failed for good")
    t_failed = time.monotonic()
    # it stays down (a restart would have come after a backoff of well under 1 s)
    while time.monotonic() < t_failed + 1.5:
        w = winfo(s)
        assert w["state"] == "failed" and w["is_alive"] is False and w["pid"] == 0, w
        time.sleep(0.05)
    assert w["restart_count"] == 1 and w["is_ready"] is False
    assert "restart budget" in w.get("reason", ""), w
    r = s.get("/livez")
    assert r.status == 503, r.body
    assert r.header("Retry-After")
    for path in ("/health", "/readyz", "/tt-liveness"):
        assert s.get(path).status == 503, path
    err = s.get("/health").json()["error"]
    assert "worker 0" in err and "restart budget" in err, err
    r = infer(s, timeout=5)
    assert_json_error(r, (503,))
    assert r.elapsed < 1.0


# --- a long request that makes progress is not a wedge ---------------------------------

def test_long_request_with_progress_is_not_restarted(server_factory):
    # 5 s of work, 5 x the probe timeout and > 3 x the progress budget, with a
    # progress step every 0.1 s
    s = server_factory(recovery_env(MOCK_LATENCY_MS=5000, MOCK_STEPS=50))
    pid = s.worker_pid()
    call = Call(lambda: infer(s, timeout=60))
    s.wait_for(lambda: winfo(s)["in_flight"] == 1, 5, what="request in flight")
    polls = 0
    while call.is_alive():
        assert s.get("/health").status == 200
        w = winfo(s)
        assert w["canary_state"] in ("healthy", "probing") and w["pid"] == pid, w
        polls += 1
        time.sleep(0.05)
    r = call.get()
    print("long request: %d after %.2f s, %d health polls" % (r.status, r.elapsed, polls))
    assert r.status == 200, r.body
    assert r.elapsed >= 5 * TIMEOUT
    w = winfo(s)
    assert w["restart_count"] == 0 and w["pid"] == pid and w["error_count"] == 0
    assert not s.log_lines(event="canary_transition", to="suspect")
    assert not s.log_lines(event="canary_transition", to="dead")
    assert msum(metrics(s), "mediad_worker_restarts_total") == 0


# --- maintenance routes -------------------------------------------------------------------

def test_reset_device_restarts_exactly_that_worker(server_factory):
    s = server_factory(DEVICE_IDS="(0),(1)")
    wait_all_ready(s, 2)
    before = s.liveness()["worker_info"]
    assert s.post("/tt-reset-device?device_id=0", auth=False).status == 401
    assert s.get("/tt-reset-device?device_id=0").status == 405
    r = s.post("/tt-reset-device")
    assert r.status == 422, r.body
    assert "device_id" in r.body.decode()
    r = s.post("/tt-reset-device?device_id=7")
    assert r.status == 404, r.body
    # nothing restarted by the rejected calls
    now = s.liveness()["worker_info"]
    assert [now[w]["pid"] for w in "01"] == [before[w]["pid"] for w in "01"]

    r = s.post("/tt-reset-device?device_id=0")
    assert r.status == 200, r.body
    wait_restarted(s, "0", before["0"]["pid"], count=1)
    after = s.liveness()["worker_info"]
    assert after["1"]["pid"] == before["1"]["pid"]
    assert after["1"]["restart_count"] == 0
    assert after["0"]["restart_count"] == 1
    s.wait_ready()
    assert infer(s).status == 200


def test_deep_reset_restarts_all_workers(server_factory):
    s = server_factory(DEVICE_IDS="(0),(1)")
    wait_all_ready(s, 2)
    before = s.liveness()["worker_info"]
    assert s.post("/tt-deep-reset", auth=False).status == 401
    r = s.post("/tt-deep-reset")
    assert r.status == 200, r.body
    for wid in "01":
        wait_restarted(s, wid, before[wid]["pid"], count=1)
    wait_all_ready(s, 2)
    assert s.get("/health").status == 200
    assert infer(s).status == 200


def test_reset_device_command_runs_between_kill_and_respawn(server_factory, tmp_path):
    out = tmp_path / "resets.txt"
    cmd = 'echo "$(date +%%s.%%N) [$1] [$MEDIAD_DEVICE_ID]" >> %s' % out
    s = server_factory(DEVICE_IDS="(0),(1)", RESET_DEVICE_COMMAND=cmd)
    wait_all_ready(s, 2)
    pid0 = s.worker_pid("0")
    r = s.post("/tt-reset-device?device_id=0")
    assert r.status == 200, r.body
    wait_restarted(s, "0", pid0, count=1)
    assert out.exists(), "RESET_DEVICE_COMMAND did not run"
    lines = out.read_text().splitlines()
    assert len(lines) == 1, lines
    ts, *ids = lines[0].split()
    assert "[0]" in ids, "the command gets the device id: %r" % lines[0]
    new_start = winfo(s, "0")["start_time"]
    assert float(ts) <= new_start + 0.01, "the command ran before the respawn"


# --- continuous traffic with one wedged worker ---------------------------------------------

def test_wedged_worker_under_traffic_costs_only_its_requests(server_factory):
    s = server_factory(recovery_env(DEVICE_IDS="(0),(1)", MOCK_LATENCY_MS=100))
    wait_all_ready(s, 2)
    pid0, pid1 = s.worker_pid("0"), s.worker_pid("1")
    stop = threading.Event()
    results = []
    lock = threading.Lock()

    def client():
        while not stop.is_set():
            try:
                r = infer(s, timeout=20)
                res = (r.status, r.body if r.status != 200 else b"")
            except Exception as e:  # no answer at all: always a failure
                res = ("no answer", repr(e))
            with lock:
                results.append(res)

    clients = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    for c in clients:
        c.start()
    try:
        s.wait_for(lambda: len(results) >= 20, 15, what="traffic flowing")
        os.kill(pid0, signal.SIGSTOP)
        t0 = time.monotonic()
        n_at_stop = len(results)
        wait_restarted(s, "0", pid0)
        print("wedge under traffic: worker 0 restarted and ready %.3f s after SIGSTOP"
              % (time.monotonic() - t0))
        s.wait_for(lambda: len(results) >= n_at_stop + 40, 20, what="traffic after recovery")
    finally:
        stop.set()
        for c in clients:
            c.join(30)
        cont(s, pid0)
    assert not any(c.is_alive() for c in clients), "a client never got an answer"
    failed = [r for r in results if r[0] != 200]
    print("wedge under traffic: %d requests, %d failed: %s"
          % (len(results), len(failed), sorted(set(r[0] for r in failed))))
    assert all(r[0] in (503, 504) for r in failed), failed
    # only the requests that were on worker 0 when it froze (its dispatch window)
    assert len(failed) <= 4, failed
    info = s.liveness()["worker_info"]
    assert info["0"]["restart_count"] == 1
    assert info["1"]["restart_count"] == 0 and info["1"]["pid"] == pid1
    assert_restarted_for_canary(s)


# --- warmup watchdog: a worker that never becomes ready ------------------------------------
#
# MOCK_WARMUP_HANG=N makes the first N warmups of a worker hang until it is
# killed (MOCK_WARMUP_HANG_WORKER picks one worker); SIGSTOP during a warmup
# is the external version of the same wedge. Detection is measured on the
# supervisor's own log clock, from "worker X started" to the warmup_timeout
# event; the client-side waits only add MARGIN for this shared machine.

def warmup_env(**kw):
    env = {"WORKER_WARMUP_TIMEOUT_SECONDS": WARMUP_TIMEOUT}
    env.update(kw)
    return env


def log_ts(line):
    return datetime.datetime.fromisoformat(line["ts"].replace("Z", "+00:00")).timestamp()


def starts(s, wid):
    """(log time, pid) of every process start of worker wid, in order."""
    pat = re.compile(r"^worker %s started \(pid (\d+)\)$" % re.escape(wid))
    out = []
    for l in s.log_lines(role="supervisor"):
        m = pat.match(l.get("msg", ""))
        if m:
            out.append((log_ts(l), int(m.group(1))))
    return out


def warmup_timeouts(s, wid):
    return [l for l in s.log_lines(event="warmup_timeout") if l.get("device_ids") == wid]


def detection_times(s, wid):
    """For each warmup_timeout of wid: seconds from its process start to the event."""
    started = {pid: t for t, pid in starts(s, wid)}
    return [log_ts(e) - started[e["pid"]] for e in warmup_timeouts(s, wid)]


def assert_timeout_event(e, wid, action):
    assert e["level"] == "error" and e["worker"] == wid, e
    assert e["device_ids"] == wid and e["action"] == action, e
    assert e["timeout_s"] == WARMUP_TIMEOUT, e
    assert WARMUP_TIMEOUT <= e["elapsed_s"] <= WARMUP_BOUND, e
    assert "worker %s" % wid in e["msg"] and "dead in warmup" in e["msg"], e


def assert_detected_in_bound(s, wid, n, what):
    times = detection_times(s, wid)
    assert len(times) == n, (times, s.log_text())
    for t in times:
        print("%s: warmup timeout detected %.3f s after the worker started (bound %.2f s)"
              % (what, t, WARMUP_BOUND))
        assert WARMUP_TIMEOUT - 0.01 <= t <= WARMUP_BOUND, (t, WARMUP_BOUND)


def test_warmup_hang_is_killed_respawned_and_then_serves(server_factory, tmp_path):
    out = tmp_path / "resets.txt"
    cmd = 'echo "$(date +%%s.%%N) [$1]" >> %s' % out
    s = server_factory(warmup_env(MOCK_WARMUP_HANG=1, RESET_DEVICE_COMMAND=cmd), wait=False)
    assert s.get("/v1/config", headers=AUTH).json()["WORKER_WARMUP_TIMEOUT_SECONDS"] \
        == WARMUP_TIMEOUT
    health, livez = set(), set()

    def respawned():
        health.add(s.get("/health").status)
        livez.add(s.get("/livez").status)
        return len(starts(s, "0")) >= 2

    s.wait_for(respawned, RECOVER_WAIT, what="worker 0 respawned after its warmup hang")
    (t0, pid0), (t1, pid1) = starts(s, "0")[:2]
    print("warmup hang: respawned %.3f s after the first start (bound %.2f s + backoff "
          "%.1f s + %.1f)" % (t1 - t0, WARMUP_BOUND, FIRST_BACKOFF, MARGIN))
    assert t1 - t0 <= WARMUP_BOUND + FIRST_BACKOFF + MARGIN
    assert health == {503} and livez == {200}, (health, livez)
    s.wait_ready()
    assert_detected_in_bound(s, "0", 1, "warmup hang")
    (e,) = warmup_timeouts(s, "0")
    assert_timeout_event(e, "0", "restart")
    assert e["pid"] == pid0 and e["phase"] == "warmup", e
    w = winfo(s)
    assert w["pid"] == pid1 and w["restart_count"] == 1 and w["is_ready"], w
    assert infer(s).status == 200
    m = metrics(s)
    assert msum(m, "mediad_worker_restarts_total", worker="0", reason="warmup_timeout") == 1
    assert msum(m, "mediad_worker_restarts_total") == 1
    assert msum(m, "mediad_worker_warmup_timeouts_total", worker="0") == 1
    # the device was reset between the kill and the respawn
    lines = out.read_text().splitlines()
    assert len(lines) == 1 and lines[0].endswith("[0]"), lines
    assert log_ts(e) <= float(lines[0].split()[0]) <= t1 + 0.01, (lines, log_ts(e), t1)


def test_every_worker_hangs_in_warmup_until_budget_spent_then_livez_503(server_factory):
    # one restart each: warmup, timeout, restart, warmup again (a re-warmup
    # gets its own deadline), timeout, budget spent -> failed
    s = server_factory(warmup_env(DEVICE_IDS="(0),(1)", MOCK_WARMUP_HANG=1000,
                                  MAX_WORKER_RESTART_COUNT=1), wait=False)
    health = []

    def dead():
        health.append(s.get("/health").status)
        return s.get("/livez").status == 503

    s.wait_for(dead, RECOVER_WAIT, what="/livez 503")
    t_dead = time.monotonic()
    first = min(t for wid in "01" for t, _ in starts(s, wid))
    # 2 warmups of at most WARMUP_BOUND each, one backoff between them
    bound = 2 * WARMUP_BOUND + FIRST_BACKOFF
    elapsed = time.time() - first
    print("all workers hang in warmup: /livez 503 within %.3f s of the first start "
          "(bound %.2f s + %.1f)" % (elapsed, bound, MARGIN))
    assert elapsed <= bound + MARGIN
    assert health and all(h == 503 for h in health), health
    for wid in "01":
        assert_detected_in_bound(s, wid, 2, "worker %s warmup and re-warmup" % wid)
        assert all(e["action"] == "restart" for e in warmup_timeouts(s, wid))
        w = winfo(s, wid)
        assert w["state"] == "failed" and w["pid"] == 0 and w["restart_count"] == 1, w
        assert "restart budget" in w["reason"] and "warmup timed out" in w["reason"], w
    r = s.get("/livez")
    assert r.status == 503 and r.header("Retry-After"), r.body
    for path in ("/health", "/readyz", "/tt-liveness", "/startupz"):
        assert s.get(path).status == 503, path
    err = s.get("/health").json()["error"]
    assert "worker 0" in err and "worker 1" in err and "warmup timed out" in err, err
    assert_json_error(infer(s, timeout=5), (503,))
    # it stays that way: no further spawn for longer than a warmup deadline
    time.sleep(max(0.0, t_dead + WARMUP_BOUND - time.monotonic()))
    assert len(starts(s, "0")) == 2 and len(starts(s, "1")) == 2
    m = metrics(s)
    for wid in "01":
        assert msum(m, "mediad_worker_warmup_timeouts_total", worker=wid) == 2
        assert msum(m, "mediad_worker_restarts_total", worker=wid, reason="warmup_timeout") == 1


def test_one_worker_hangs_in_warmup_the_other_serves(server_factory):
    s = server_factory(warmup_env(DEVICE_IDS="(0),(1)", MOCK_WARMUP_HANG=1000,
                                  MOCK_WARMUP_HANG_WORKER="1"))
    pid0 = s.worker_pid("0")
    results, health, livez = [], [], []
    # serve while worker 1 goes through two hung warmups (the second one a
    # respawn) and is killed each time
    while len(warmup_timeouts(s, "1")) < 2:
        results.append(infer(s, timeout=10).status)
        health.append(s.get("/health").status)
        livez.append(s.get("/livez").status)
        assert len(results) < 2000, "worker 1 was not killed twice: " + s.log_text()
    print("one worker hangs in warmup: %d requests served meanwhile" % len(results))
    assert results and all(r == 200 for r in results), results
    assert all(h == 200 for h in health) and all(l == 200 for l in livez), (health, livez)
    assert_detected_in_bound(s, "1", 2, "worker 1 of 2")
    assert not warmup_timeouts(s, "0")
    # the second kill is reaped (and counted) just after its log line
    s.wait_for(lambda: winfo(s, "1")["restart_count"] >= 2, MARGIN, what="second restart")
    info = s.liveness()["worker_info"]
    assert info["0"]["pid"] == pid0 and info["0"]["restart_count"] == 0 and info["0"]["is_ready"]
    assert info["1"]["is_ready"] is False, info["1"]
    assert msum(metrics(s), "mediad_worker_warmup_timeouts_total", worker="0") == 0


def test_respawn_wedged_in_rewarmup_hits_the_same_timeout(server_factory):
    # a worker that served, crashed, and wedges (SIGSTOP) while warming up again
    warm = 0.8
    timeout = 2.5
    s = server_factory(warmup_env(MOCK_WARMUP_SECONDS=warm, WORKER_WARMUP_TIMEOUT_SECONDS=timeout))
    pid0 = s.worker_pid()
    os.kill(pid0, signal.SIGKILL)
    pid1 = s.wait_for(lambda: (lambda p: p if p not in (0, pid0) else None)(s.worker_pid()),
                      RECOVER_WAIT, interval=0.01, what="worker 0 respawned")
    try:
        os.kill(pid1, signal.SIGSTOP)
        assert winfo(s)["is_ready"] is False, "respawn warmed up before it could be stopped"
        wait_restarted(s, "0", pid1, count=2)
    finally:
        cont(s, pid1)
    (e,) = warmup_timeouts(s, "0")
    assert e["pid"] == pid1 and e["action"] == "restart", e
    assert e["timeout_s"] == timeout and timeout <= e["elapsed_s"] <= timeout + TICK, e
    (t,) = detection_times(s, "0")
    print("re-warmup wedge: detected %.3f s after the respawn (bound %.2f s)" % (t, timeout + TICK))
    assert timeout - 0.01 <= t <= timeout + TICK
    s.wait_ready()
    assert infer(s).status == 200
    m = metrics(s)
    assert msum(m, "mediad_worker_restarts_total", worker="0", reason="crash") == 1
    assert msum(m, "mediad_worker_restarts_total", worker="0", reason="warmup_timeout") == 1


def test_warmup_timeout_with_gate_reports_and_leaves_the_worker(server_factory):
    s = server_factory(warmup_env(MOCK_WARMUP_HANG=1, CANARY_ON_DEAD="gate"), wait=False)
    s.wait_for(lambda: warmup_timeouts(s, "0"), RECOVER_WAIT, what="warmup timeout")
    (e,) = warmup_timeouts(s, "0")
    assert_timeout_event(e, "0", "gate")
    w = winfo(s)
    assert w["pid"] == e["pid"] and w["state"] in ("starting", "warming_up"), w
    assert "warmup timed out" in w["reason"], w
    err = s.get("/health").json()["error"]
    assert "warmup timed out" in err, err
    # reported once, never killed; /livez stays 200 (gate leaves the verdict
    # to the orchestrator's startup probe)
    time.sleep(WARMUP_BOUND)
    assert len(warmup_timeouts(s, "0")) == 1 and len(starts(s, "0")) == 1
    assert s.get("/livez").status == 200 and s.get("/health").status == 503
    m = metrics(s)
    assert msum(m, "mediad_worker_warmup_timeouts_total", worker="0") == 1
    assert msum(m, "mediad_worker_restarts_total") == 0


def test_warmup_timeout_with_exit_exits_70(server_factory):
    s = server_factory(warmup_env(MOCK_WARMUP_HANG=1, CANARY_ON_DEAD="exit"), wait=False)
    t0 = time.monotonic()
    assert s.proc.wait(RECOVER_WAIT) == 70
    elapsed = time.monotonic() - t0
    print("warmup hang with CANARY_ON_DEAD=exit: exit 70 after %.3f s (bound %.2f s + %.1f)"
          % (elapsed, WARMUP_BOUND, MARGIN))
    assert elapsed <= WARMUP_BOUND + MARGIN
    s.reader.join(2)
    (e,) = warmup_timeouts(s, "0")
    assert_timeout_event(e, "0", "exit")
    assert_detected_in_bound(s, "0", 1, "exit policy")
