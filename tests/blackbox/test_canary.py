"""Black-box tests of the canary (HEALTH.md sections 2-5 and 9, scenarios
2-10 and 14-15): per-worker probes, the state machine, gating of /health,
/tt-liveness and the inference routes, kill-switches, metrics and logs.

Every scenario runs its own server with the test-sized settings of harness.py
(wait 1 s, probe timeouts 1 s, tick 0.1 s, 2 misses -> dead, no grace) and,
unless a test says otherwise, CANARY_ON_DEAD=gate so that a dead worker stays
observable instead of being restarted. Faults are injected through
POST /debug/faults; external wedges are a real SIGSTOP.

The only timing assertions are bounds that hold by design: the detection
deadline wait + misses x (timeout + tick) + tick of HEALTH.md section 9 plus
a margin of MARGIN seconds for this shared machine, lower bounds that follow
from the probe timeout, and "fast" answers (well under 100 ms) that the
contract promises for health routes and for 503s of a gated server."""
import os
import signal
import statistics
import threading
import time

import pytest

from harness import (FAST, IMG, IMG_BODY, Call, clear_faults, infer, inject, metrics,
                     mseries, msum, wait_all_ready, winfo)

# --- settings and bounds ------------------------------------------------------

WAIT = float(FAST["CANARY_WAIT_SECONDS"])
TIMEOUT = float(FAST["CANARY_PROBE_TIMEOUT_SECONDS"])
DEEP_TIMEOUT = float(FAST["CANARY_DEEP_PROBE_TIMEOUT_SECONDS"])
TICK = float(FAST["CANARY_TICK_SECONDS"])
MISSES = int(FAST["CANARY_DEAD_MISSES"])
MARGIN = 1.5
# HEALTH.md section 9 scenario 3: an idle wedge is seen within this long.
DETECT_BOUND = WAIT + MISSES * (TIMEOUT + TICK) + TICK
# Same with every probe deep (CANARY_DEEP_EVERY_N=1): the deep timeout applies.
DETECT_BOUND_DEEP = WAIT + MISSES * (DEEP_TIMEOUT + TICK) + TICK

INFER_ROUTES = [
    (IMG, IMG_BODY),
    ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/audio/speech", {"input": "hello there"}),
    ("/v1/embeddings", {"model": "m", "input": "hello"}),
]
READINESS = ("/health", "/readyz", "/v2/health/ready")


def gate_env(**kw):
    env = {"ENABLE_FAULT_INJECTION": "true", "CANARY_ON_DEAD": "gate"}
    env.update({k: str(v) for k, v in kw.items()})
    return env


# --- helpers ------------------------------------------------------------------

def wait_canary(s, wid, state, timeout):
    s.wait_for(lambda: winfo(s, wid)["canary_state"] == state, timeout,
               what="worker %s canary %s" % (wid, state))


def transitions(s, to=None):
    lines = s.log_lines(event="canary_transition")
    return [l for l in lines if to is None or l.get("to") == to]


def names_worker(line, wid):
    return line.get("worker") == wid or ("worker %s " % wid) in line.get("msg", "")


def assert_fast_503(s, routes=INFER_ROUTES, n=3):
    """Every inference route answers a JSON 503 with Retry-After, at once."""
    lat = []
    for path, body in routes:
        for _ in range(n):
            r = s.post(path, body, timeout=10)
            assert r.status == 503, (path, r.status, r.body)
            assert r.header("Content-Type").startswith("application/json")
            assert r.header("Retry-After"), path
            err = r.json()
            assert err["error"]["code"] == 503 and err["detail"], err
            lat.append(r.elapsed)
    med = statistics.median(lat)
    print("inference 503 latency: median %.2f ms, max %.2f ms (%d requests)"
          % (med * 1e3, max(lat) * 1e3, len(lat)))
    # HEALTH.md: 503 fast, never queued. 100 ms is the contract; the max only
    # has to be far below anything a queued request would take (probe cycles).
    assert med < 0.1, lat
    assert max(lat) < 1.0, lat
    info = s.liveness()
    assert info["queue_size"] == 0
    assert all(w["in_flight"] == 0 for w in info["worker_info"].values())


def health_latencies(s, n=15):
    lat = {}
    for path in ("/health", "/tt-liveness", "/livez", "/readyz"):
        lat[path] = []
        for _ in range(n):
            r = s.get(path, timeout=5)
            assert r.status in (200, 503), (path, r.status)
            lat[path].append(r.elapsed)
    return lat


def assert_health_fast(lat, what):
    for path, xs in lat.items():
        xs = sorted(xs)
        med, p90, mx = statistics.median(xs), xs[int(len(xs) * 0.9) - 1], xs[-1]
        print("%s %-13s median %.2f ms  p90 %.2f ms  max %.2f ms"
              % (what, path, med * 1e3, p90 * 1e3, mx * 1e3))
        # contract: < 10 ms; asserted with room for this shared machine
        assert med < 0.1, (what, path, xs)
        assert p90 < 0.1, (what, path, xs)


# --- scenario 2: ready ----------------------------------------------------------

def test_ready_two_workers_report_ready_with_zero_counts(server_factory):
    s = server_factory(DEVICE_IDS="(0),(1)")
    wait_all_ready(s, 2)
    for path in READINESS:
        r = s.get(path)
        assert r.status == 200, (path, r.body)
        assert r.header("Content-Type").startswith("application/json")
    assert s.get("/health").json()["status"] == "healthy"
    assert b'"model_ready":true' in s.get("/tt-liveness").body
    r = s.get("/tt-liveness")
    assert r.status == 200
    body = r.json()
    assert body["status"] == "alive" and body["model_ready"] is True
    assert body["canary_alive"] is True
    assert body["canary_state"] in ("healthy", "probing")
    info = body["worker_info"]
    assert isinstance(info, dict) and sorted(info) == ["0", "1"]
    pids = set()
    for wid, w in info.items():
        assert w["worker_id"] == wid
        assert w["is_alive"] is True and w["is_ready"] is True
        assert w["restart_count"] == 0 and w["error_count"] == 0
        assert w["misses"] == {"shallow": 0, "deep": 0, "progress": 0}
        assert w["canary_state"] in ("healthy", "probing")
        assert w["pid"] > 0
        pids.add(w["pid"])
    assert len(pids) == 2, "each worker is its own process"
    m = metrics(s)
    assert msum(m, "mediad_worker_ready", worker="0") == 1
    assert msum(m, "mediad_worker_ready", worker="1") == 1


# --- scenario 3 (+ transitions, metrics): idle shallow failure -----------------

@pytest.mark.parametrize("fault,what", [("hang_ping", "timeout"), ("error_ping", "error")])
def test_idle_shallow_failure_gates_within_bound(server_factory, fault, what):
    s = server_factory(gate_env())
    assert s.liveness()["worker_info"]["0"]["is_ready"]
    t0 = time.monotonic()
    inject(s, "0", fault)
    seen = {}

    def both_503():
        for path in ("/health", "/tt-liveness"):
            if path not in seen and s.get(path).status == 503:
                seen[path] = time.monotonic() - t0
        return len(seen) == 2

    s.wait_for(both_503, DETECT_BOUND + MARGIN + 3, what="/health and /tt-liveness 503")
    print("%s: /health 503 after %.3f s, /tt-liveness 503 after %.3f s (bound %.2f s + %.1f)"
          % (fault, seen["/health"], seen["/tt-liveness"], DETECT_BOUND, MARGIN))
    for path, t in seen.items():
        assert t <= DETECT_BOUND + MARGIN, (path, t)
        if fault == "hang_ping":
            # each of the MISSES misses is a probe that went unanswered for a
            # whole probe timeout, and the first one was sent after the fault
            assert t > MISSES * TIMEOUT - 0.1, (path, t)

    # the bodies name the worker, the tier and the reason
    for path in READINESS:
        r = s.get(path)
        assert r.status == 503, (path, r.body)
        assert r.header("Retry-After")
        err = r.json()["error"]
        assert "worker 0" in err and "shallow" in err and what in err, err
    r = s.get("/tt-liveness")
    assert r.status == 503 and r.header("Retry-After")
    body = r.json()
    assert body["status"] == "alive" and body["model_ready"] is False
    assert body["canary_alive"] is False and body["canary_state"] == "dead"
    assert "worker 0" in body["error"] and "shallow" in body["error"]
    w = body["worker_info"]["0"]
    assert w["canary_state"] == "dead" and w["is_ready"] is False and w["is_alive"] is True
    assert w["misses"]["shallow"] >= MISSES
    assert "shallow" in w["canary_reason"] and what in w["canary_reason"]
    assert w["error_count"] == 0, "probes never count toward error_count"
    assert s.get("/livez").status == 200, "gate only: recovery is not exhausted"

    # inference routes: JSON 503 at once, nothing queued
    assert_fast_503(s)

    # transitions are logged, with the tier and the outcome
    # (transitions are drained and logged at the monitor's next tick)
    dead = s.wait_for(lambda: [l for l in transitions(s, to="dead") if names_worker(l, "0")],
                      2, what="a canary_transition log line to dead")
    assert dead[0]["from"] in ("healthy", "probing", "suspect")
    assert dead[0]["tier"] == "shallow" and dead[0]["outcome"] == what
    assert "latency_s" in dead[0] and "cause" in dead[0]
    assert [l for l in transitions(s, to="suspect") if names_worker(l, "0")], \
        "with 2 misses to dead the first miss makes the worker suspect"

    # metrics: one-hot state, failures, probes, transitions, readiness
    m = metrics(s)
    states = {l["state"]: v for l, v in mseries(m, "tt_canary_state", worker="0")}
    assert states.get("dead") == 1 and sum(states.values()) == 1, states
    assert all(l.get("model_type") for l, _ in mseries(m, "tt_canary_state"))
    assert msum(m, "tt_canary_failures_total", worker="0", depth="shallow") >= MISSES
    assert msum(m, "mediad_canary_probes_total", worker="0", depth="shallow",
                outcome=what) >= MISSES
    assert msum(m, "mediad_canary_transitions_total", worker="0", to="dead") >= 1
    assert msum(m, "mediad_worker_ready", worker="0") == 0

    # no flapping: re-probes of a dead worker keep it dead while the fault lasts
    end = time.monotonic() + WAIT + TIMEOUT + 3 * TICK
    while time.monotonic() < end:
        assert s.get("/health").status == 503
        assert winfo(s)["canary_state"] == "dead"
        time.sleep(0.05)


# --- scenario 4: deep failures with shallow successes ---------------------------

@pytest.mark.parametrize("source", [
    "fault_error_deep",
    "MOCK_DEEP_FAIL",
])
def test_deep_failures_declare_dead_and_shallow_successes_keep_the_streak(
        server_factory, source):
    # every 2nd probe is deep: shallow, deep, shallow, deep. A tick of 1 s
    # keeps each phase (after a deep miss, after the shallow success in
    # between) visible for about a second.
    env = gate_env(CANARY_DEEP_EVERY_N=2, CANARY_TICK_SECONDS=1)
    if source == "MOCK_DEEP_FAIL":
        env["MOCK_DEEP_FAIL"] = "error"   # deep probes fail; warmup itself is fine
    s = server_factory(env, wait=False)
    s.wait_ready(timeout=8)
    if source == "fault_error_deep":
        inject(s, "0", "error_deep")
    samples = []

    def dead():
        w = winfo(s)
        samples.append((w["misses"]["shallow"], w["misses"]["deep"], w["last_probe_ok"],
                        w["canary_state"]))
        return w["canary_state"] == "dead"

    s.wait_for(dead, 20, what="deep failures -> dead")
    assert all(sh == 0 for sh, _, _, _ in samples), "shallow probes succeed: %s" % samples
    deeps = [d for _, d, _, _ in samples]
    assert deeps == sorted(deeps), "the deep streak never went back: %s" % deeps
    assert deeps[-1] == MISSES
    # while the deep streak was 1, a probe (a shallow one: deep ones fail)
    # succeeded, and the streak still went on to dead
    ok_at_one = [ok for _, d, ok, _ in samples if d == 1]
    assert len(set(ok_at_one)) >= 2, \
        "no shallow success observed between the deep misses: %s" % samples
    assert any(st == "suspect" for _, d, _, st in samples if d == 1)

    r = s.get("/health")
    assert r.status == 503 and "deep" in r.json()["error"], r.body
    body = s.liveness()
    assert body["canary_alive"] is False and body["canary_state"] == "dead"
    assert "deep" in body["worker_info"]["0"]["canary_reason"]
    dead_tr = s.wait_for(lambda: [l for l in transitions(s, to="dead") if names_worker(l, "0")],
                         2, what="a canary_transition log line to dead")
    assert dead_tr[0]["tier"] == "deep", dead_tr
    m = metrics(s)
    assert msum(m, "mediad_canary_probes_total", worker="0", depth="deep",
                outcome="error") == MISSES
    assert msum(m, "mediad_canary_probes_total", worker="0", depth="shallow",
                outcome="ok") >= 2
    assert msum(m, "tt_canary_failures_total", worker="0", depth="deep") == MISSES
    assert msum(m, "tt_canary_failures_total", worker="0", depth="shallow") == 0


# --- scenario 5: wrong digest -----------------------------------------------------

def test_corrupt_deep_digest_declares_dead(server_factory):
    s = server_factory(gate_env(CANARY_DEEP_EVERY_N=1))
    t0 = time.monotonic()
    inject(s, "0", "corrupt_deep")
    s.wait_for(lambda: s.get("/health").status == 503, DETECT_BOUND_DEEP + MARGIN + 3,
               what="/health 503 after corrupt_deep")
    elapsed = time.monotonic() - t0
    print("corrupt_deep: /health 503 after %.3f s (bound %.2f s + %.1f)"
          % (elapsed, DETECT_BOUND_DEEP, MARGIN))
    assert elapsed <= DETECT_BOUND_DEEP + MARGIN
    err = s.get("/health").json()["error"]
    assert "worker 0" in err and "deep" in err and "digest" in err, err
    w = winfo(s)
    assert w["canary_state"] == "dead" and w["misses"]["deep"] >= MISSES
    assert "digest" in w["canary_reason"], w
    assert w["is_alive"], "a wrong digest is a miss, the worker process is fine"
    m = metrics(s)
    # a wrong digest is recorded as a miss, never as a success
    assert msum(m, "mediad_canary_probes_total", worker="0", depth="deep",
                outcome="miss") >= MISSES
    assert msum(m, "tt_canary_failures_total", worker="0", depth="deep") >= MISSES
    dead_tr = s.wait_for(lambda: [l for l in transitions(s, to="dead") if names_worker(l, "0")],
                         2, what="a canary_transition log line to dead")
    assert dead_tr[0]["tier"] == "deep" and dead_tr[0]["outcome"] == "miss", dead_tr


# --- scenario 6: one miss only ------------------------------------------------------

def test_single_miss_is_suspect_and_stays_200(server_factory):
    # a tick of 1 s: the re-probe after a miss goes at the next tick, so the
    # suspect state lasts about a second and is observable
    s = server_factory(gate_env(CANARY_DEAD_MISSES=3, CANARY_TICK_SECONDS=1))
    inject(s, "0", "error_ping", count=1)
    seen = {}

    def suspect():
        lv = s.get("/tt-liveness")
        h = s.get("/health")
        assert h.status == 200, h.body
        assert lv.status == 200, lv.body
        body = lv.json()
        if body["worker_info"]["0"]["canary_state"] == "suspect":
            seen.setdefault("liveness", body)
            if h.json()["canary_state"] == "suspect":   # /health shows it too
                seen["health"] = h.json()
                return True
        return False

    s.wait_for(suspect, 10, what="suspect after one miss, in /tt-liveness and /health")
    assert seen["health"]["status"] == "healthy"
    body = seen["liveness"]
    assert body["canary_state"] == "suspect" and body["canary_alive"] is True
    assert body["model_ready"] is True
    w = body["worker_info"]["0"]
    assert w["misses"]["shallow"] == 1 and w["is_ready"] is True
    assert "suspect" in w["canary_reason"] and "shallow" in w["canary_reason"]
    # served while suspect
    assert infer(s).status == 200

    # the next probe succeeds: healthy again, and 200 throughout
    def healthy_again():
        assert s.get("/health").status == 200
        w = winfo(s)
        return w["canary_state"] in ("healthy", "probing") and w["misses"]["shallow"] == 0

    s.wait_for(healthy_again, 10, what="healthy after the single miss")
    assert not transitions(s, to="dead")
    assert [l for l in transitions(s, to="suspect") if names_worker(l, "0")]
    m = metrics(s)
    assert msum(m, "mediad_canary_transitions_total", worker="0", to="dead") == 0
    assert msum(m, "mediad_canary_transitions_total", worker="0", to="suspect") >= 1


# --- scenario 7: fault cleared --------------------------------------------------------

def test_cleared_hang_returns_to_200(server_factory):
    s = server_factory(gate_env())
    inject(s, "0", "hang_ping")
    s.wait_for(lambda: s.get("/health").status == 503, DETECT_BOUND + MARGIN + 3,
               what="dead")
    t0 = time.monotonic()
    clear_faults(s)   # releases the hung ping; its stale answers must be dropped
    s.wait_for(lambda: s.get("/health").status == 200, WAIT + TIMEOUT + 2 * TICK + MARGIN + 3,
               what="/health 200 after the fault was cleared")
    elapsed = time.monotonic() - t0
    print("hang cleared: /health 200 after %.3f s (bound %.2f s + %.1f)"
          % (elapsed, WAIT + TIMEOUT + 2 * TICK, MARGIN))
    assert elapsed <= WAIT + TIMEOUT + 2 * TICK + MARGIN
    assert s.get("/tt-liveness").status == 200
    w = winfo(s)
    assert w["misses"]["shallow"] == 0 and w["canary_state"] in ("healthy", "probing")
    assert w["restart_count"] == 0, "gate mode never restarts"
    # the answers of the probes that had timed out came back late and were dropped
    assert msum(metrics(s), "mediad_canary_probes_total", worker="0", outcome="late") >= 1
    # (that /health 200 and dispatch agree at once is test_health_and_dispatch_agree_*)
    s.wait_for(lambda: infer(s).status == 200, 2 * TICK + MARGIN, what="served again")


def test_cleared_deep_fault_needs_a_deep_success(server_factory):
    # deep is the failing tier: after the fault is cleared, a shallow success
    # must not return the worker to service, the next deep success does
    s = server_factory(gate_env(CANARY_DEEP_EVERY_N=2))
    inject(s, "0", "error_deep")
    wait_canary(s, "0", "dead", 20)
    base_shallow = msum(metrics(s), "mediad_canary_probes_total", worker="0",
                        depth="shallow", outcome="ok")
    clear_faults(s)
    t0 = time.monotonic()
    still_503_after_shallow = []

    def recovered():
        shallow_ok = msum(metrics(s), "mediad_canary_probes_total", worker="0",
                          depth="shallow", outcome="ok")
        st = s.get("/health").status
        if st == 503 and shallow_ok > base_shallow:
            still_503_after_shallow.append(shallow_ok)
        return st == 200

    bound = 2 * (WAIT + TICK) + DEEP_TIMEOUT + TICK
    s.wait_for(recovered, bound + MARGIN + 3, what="/health 200 after a deep success")
    elapsed = time.monotonic() - t0
    print("deep fault cleared: /health 200 after %.3f s (bound %.2f s + %.1f)"
          % (elapsed, bound, MARGIN))
    assert elapsed <= bound + MARGIN
    assert still_503_after_shallow, "a shallow success alone must not clear a deep streak"
    m = metrics(s)
    assert msum(m, "mediad_canary_probes_total", worker="0", depth="deep", outcome="ok") >= 1
    assert winfo(s)["misses"]["deep"] == 0


# --- scenario 8: kill-switches ---------------------------------------------------------

def test_gate_readiness_off_reports_dead_but_serves(server_factory):
    # default CANARY_ON_DEAD (restart): with the gate off a dead canary is
    # only reported, so the worker is neither gated nor restarted
    s = server_factory(ENABLE_FAULT_INJECTION="true", CANARY_GATE_READINESS="false")
    pid = s.worker_pid()
    inject(s, "0", "error_ping")
    wait_canary(s, "0", "dead", DETECT_BOUND + MARGIN + 3)
    for path in READINESS:
        assert s.get(path).status == 200, path
    r = s.get("/tt-liveness")
    assert r.status == 200
    body = r.json()
    assert body["canary_alive"] is False and body["canary_state"] == "dead"
    assert body["model_ready"] is True
    w = body["worker_info"]["0"]
    assert w["canary_state"] == "dead" and w["pid"] == pid and w["restart_count"] == 0
    m = metrics(s)
    assert msum(m, "tt_canary_state", worker="0", state="dead") == 1
    r = infer(s)
    assert r.status == 200, r.body
    assert s.worker_pid() == pid and winfo(s)["restart_count"] == 0
    assert not s.log_lines(msg="killing worker 0")


def test_deep_probe_disabled_sends_no_deep_probe(server_factory):
    # every probe would be deep, and any deep probe would fail (corrupt
    # digest): with the kill-switch none is ever sent
    s = server_factory(gate_env(CANARY_DEEP_PROBE_ENABLED="false", CANARY_DEEP_EVERY_N=1))
    inject(s, "0", "corrupt_deep")

    def cycles():
        w = winfo(s)
        assert w["canary_state"] in ("healthy", "probing"), w
        return msum(metrics(s), "mediad_canary_probes_total", worker="0", depth="shallow",
                    outcome="ok") >= 4

    s.wait_for(cycles, 4 * (WAIT + TIMEOUT + TICK) + MARGIN + 3, what="4 probe cycles")
    m = metrics(s)
    deep = mseries(m, "mediad_canary_probes_total", depth="deep")
    assert all(v == 0 for _, v in deep), deep
    assert all(v == 0 for _, v in mseries(m, "tt_canary_probe_latency_seconds_count",
                                          depth="deep"))
    assert msum(m, "tt_canary_failures_total", depth="deep") == 0
    w = winfo(s)
    assert w["deep"] == "disabled" and w["misses"]["deep"] == 0
    assert s.get("/health").status == 200


# --- scenario 9: startup grace -----------------------------------------------------------

def test_startup_grace_delays_verdict(server_factory):
    grace = 3.0
    s = server_factory(gate_env(CANARY_STARTUP_GRACE_SECONDS=grace))
    inject(s, "0", "error_ping")
    ready_at = winfo(s)["ready_time"]
    assert ready_at, "ready_time is set once ready"
    checks = 0
    while time.time() < ready_at + grace - 0.3:
        w = winfo(s)
        assert w["canary_state"] == "healthy", ("probed during the grace", w)
        assert s.get("/health").status == 200
        checks += 1
        time.sleep(0.05)
    assert checks > 10
    assert msum(metrics(s), "mediad_canary_probes_total", worker="0") == 0, \
        "no probe during the grace"
    s.wait_for(lambda: s.get("/health").status == 503, DETECT_BOUND + MARGIN + 3,
               what="dead after the grace")
    dead_at = time.time()
    print("grace %.1f s: dead %.3f s after ready (bound %.2f s + %.1f)"
          % (grace, dead_at - ready_at, grace + DETECT_BOUND, MARGIN))
    assert dead_at >= ready_at + grace - 0.05
    assert dead_at <= ready_at + grace + DETECT_BOUND + MARGIN
    assert winfo(s)["canary_state"] == "dead"


# --- scenario 10: a long request that makes progress --------------------------------------

def test_long_request_with_progress_stays_200_and_is_not_probed(server_factory):
    s = server_factory(gate_env(MOCK_LATENCY_MS=4000, MOCK_STEPS=40))
    assert 4.0 > MISSES * TIMEOUT
    call = Call(lambda: infer(s, timeout=30))
    s.wait_for(lambda: winfo(s)["in_flight"] == 1, 5, what="request in flight")
    probes_ok = lambda m: sum(msum(m, "mediad_canary_probes_total", worker="0", outcome=o)
                              for o in ("ok", "miss", "timeout", "error"))
    base = probes_ok(metrics(s))
    base_log = len(transitions(s))
    polls = 0
    while call.is_alive():
        assert s.get("/health").status == 200
        w = winfo(s)
        assert w["canary_state"] in ("healthy", "probing"), w
        assert w["misses"] == {"shallow": 0, "deep": 0, "progress": 0}, w
        polls += 1
        time.sleep(0.05)
    after = probes_ok(metrics(s))
    r = call.get()
    print("long request: %.2f s, %d health polls, probes answered during it: %d"
          % (r.elapsed, polls, after - base))
    assert r.status == 200, r.body
    assert r.elapsed > MISSES * TIMEOUT
    assert after == base, "a probe was sent to a busy worker"
    probed = [l for l in transitions(s)[base_log:] if l.get("cause") == "probe"]
    assert not probed, probed
    assert polls > 20


# --- scenario 14: queue full -----------------------------------------------------------------

def test_queue_full_is_429_and_health_stays_200(server_factory):
    s = server_factory(MAX_QUEUE_SIZE=1, MOCK_LATENCY_MS=2000, MOCK_STEPS=20)
    admitted = []
    rejected = None
    for i in range(8):
        c = Call(lambda: infer(s, timeout=60))

        def settled():
            if not c.is_alive():
                return True
            lv = s.liveness()
            # queue_size counts every admitted request waiting to run, also
            # those handed to a worker behind its running one (batch size 1)
            running = sum(min(w["in_flight"], 1) for w in lv["worker_info"].values())
            held = lv["queue_size"] + running
            return held == len(admitted) + 1
        s.wait_for(settled, 5, what="request %d admitted or rejected" % i)
        if not c.is_alive():
            rejected = c.get()
            break
        admitted.append(c)
    assert rejected is not None, "no 429 with MAX_QUEUE_SIZE=1"
    print("429 after %d admitted requests" % len(admitted))
    assert rejected.status == 429, rejected.body
    assert rejected.header("Content-Type").startswith("application/json")
    assert rejected.json()["error"]["code"] == 429
    lv = s.get("/tt-liveness")
    assert lv.status == 200
    assert lv.json()["queue_size"] == 1 and lv.json()["max_queue_size"] == 1
    for path in READINESS + ("/livez",):
        assert s.get(path).status == 200, path
    for c in admitted:
        assert c.get(30).status == 200
    m = metrics(s)
    assert msum(m, "mediad_requests_total", code="429") >= 1


# --- scenario 15: health stays fast while workers are busy or wedged -------------------------

def test_health_fast_while_all_workers_busy_or_wedged(server_factory):
    s = server_factory(gate_env(DEVICE_IDS="(0),(1)", MOCK_LATENCY_MS=3000, MOCK_STEPS=30))
    wait_all_ready(s, 2)
    calls = [Call(lambda: infer(s, timeout=30)) for _ in range(2)]
    s.wait_for(lambda: all(w["in_flight"] >= 1 for w in s.liveness()["worker_info"].values()),
               5, what="both workers busy")
    assert_health_fast(health_latencies(s), "busy")
    for c in calls:
        assert c.get().status == 200

    pids = [s.worker_pid("0"), s.worker_pid("1")]
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        assert_health_fast(health_latencies(s), "wedged")
        s.wait_for(lambda: s.get("/health").status == 503, DETECT_BOUND + MARGIN + 3,
                   what="both wedged workers dead")
        err = s.get("/health").json()["error"]
        assert "worker 0" in err and "worker 1" in err, err
        assert_health_fast(health_latencies(s), "wedged+dead")
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)   # gate mode: still our workers
    # gate mode: the workers answer again and come back
    s.wait_for(lambda: s.get("/health").status == 200, 15, what="recovery after SIGCONT")
    wait_all_ready(s, 2)
    assert [s.worker_pid("0"), s.worker_pid("1")] == pids


# --- one wedged worker among two ----------------------------------------------------------------

def test_one_wedged_worker_is_gated_while_the_other_serves(server_factory):
    s = server_factory(gate_env(DEVICE_IDS="(0),(1)", MIN_READY_WORKERS=1))
    wait_all_ready(s, 2)
    t0 = time.monotonic()
    inject(s, "0", "hang_ping")

    def dead0():
        assert s.get("/health").status == 200, "worker 1 still serves"
        return winfo(s, "0")["canary_state"] == "dead"

    s.wait_for(dead0, DETECT_BOUND + MARGIN + 3, what="worker 0 dead")
    elapsed = time.monotonic() - t0
    print("one of two wedged: worker 0 dead after %.3f s (bound %.2f s + %.1f)"
          % (elapsed, DETECT_BOUND, MARGIN))
    assert elapsed <= DETECT_BOUND + MARGIN
    body = s.liveness()
    assert body["model_ready"] is True and body["canary_alive"] is False
    assert body["worker_info"]["1"]["is_ready"] is True
    assert body["worker_info"]["0"]["is_ready"] is False
    # requests during the wedge: all served by worker 1, never queued to 0
    for _ in range(4):
        calls = [Call(lambda: infer(s, timeout=10)) for _ in range(3)]
        assert [c.get(15).status for c in calls] == [200] * 3
    w0 = winfo(s, "0")
    assert w0["in_flight"] == 0 and w0["error_count"] == 0
    assert s.get("/health").status == 200
    m = metrics(s)
    assert msum(m, "mediad_worker_ready", worker="0") == 0
    assert msum(m, "mediad_worker_ready", worker="1") == 1


def test_one_wedged_worker_fails_health_when_two_are_required(server_factory):
    s = server_factory(gate_env(DEVICE_IDS="(0),(1)", MIN_READY_WORKERS=2))
    wait_all_ready(s, 2)
    inject(s, "0", "hang_ping")
    s.wait_for(lambda: s.get("/health").status == 503, DETECT_BOUND + MARGIN + 3,
               what="/health 503 with MIN_READY_WORKERS=2")
    err = s.get("/health").json()["error"]
    assert "worker 0" in err and "shallow" in err, err
    assert "worker 1" not in err, err
    lv = s.get("/tt-liveness")
    assert lv.status == 503
    assert lv.json()["worker_info"]["1"]["is_ready"] is True
    assert_fast_503(s, routes=[(IMG, IMG_BODY)])


def test_request_arriving_during_a_hung_probe_is_served(server_factory):
    # worker 0's device hangs in the middle of a shallow probe; a request that
    # arrives then must not be parked behind the hung probe while worker 1
    # is idle (HEALTH.md 2: a wedged worker is taken out of rotation while
    # the others keep serving). Progress budget 3 s bounds the failure mode.
    s = server_factory(gate_env(DEVICE_IDS="(0),(1)", CANARY_PROGRESS_TIMEOUT_SECONDS=3))
    wait_all_ready(s, 2)
    inject(s, "0", "hang_ping")
    s.wait_for(lambda: winfo(s, "0")["canary_state"] == "probing", WAIT + 2, interval=0.01,
               what="worker 0 probe in flight")
    r = infer(s, timeout=30)
    print("request during a hung probe: %s after %.3f s" % (r.status, r.elapsed))
    assert r.status == 200, r.body


# --- /health and dispatch agree (tick 1 s makes any lag between them visible) ----------

def test_health_and_dispatch_agree_when_a_worker_recovers(server_factory):
    # once /health says 200 again, a request is served; it must not get a 503
    # "no worker can take the request" because dispatch still has the worker gated
    s = server_factory(gate_env(CANARY_TICK_SECONDS=1))
    inject(s, "0", "error_ping")
    s.wait_for(lambda: s.get("/health").status == 503, 15, what="dead")
    clear_faults(s)
    s.wait_for(lambda: s.get("/health").status == 200, 15, interval=0.02,
               what="/health 200 after the fault was cleared")
    r = infer(s)
    assert r.status == 200, r.body


def test_health_and_dispatch_agree_when_a_worker_dies(server_factory):
    # once a worker is reported dead (not ready), no request is sent to it
    s = server_factory(gate_env(DEVICE_IDS="(0),(1)", CANARY_TICK_SECONDS=1,
                                MOCK_LATENCY_MS=300, MOCK_STEPS=3))
    wait_all_ready(s, 2)
    inject(s, "0", "error_ping")
    s.wait_for(lambda: not winfo(s, "0")["is_ready"], 15, interval=0.02,
               what="worker 0 reported not ready")
    assert winfo(s, "0")["canary_state"] == "dead"
    calls = [Call(lambda: infer(s, timeout=10)) for _ in range(2)]
    in_flight_0 = []
    while any(c.is_alive() for c in calls):
        in_flight_0.append(winfo(s, "0")["in_flight"])
        time.sleep(0.02)
    assert [c.get().status for c in calls] == [200, 200]
    assert not any(in_flight_0), "requests were dispatched to the dead worker 0: %s" % in_flight_0


def test_deadlines_dead_edge_is_acted_on(server_factory):
    """Item 8 of the restructuring issue: three deadline 504s on one worker
    made it dead, but the next tick read progress made *before* the deadlines
    and took it back to healthy in the same instant, so CANARY_ON_DEAD never
    acted. Now the dead edge is acted on: the worker is restarted."""
    s = server_factory({"REQUEST_PROCESSING_TIMEOUT_SECONDS": "1", "MOCK_LATENCY_MS": "3000",
                        "MOCK_STEPS": "4", "CANARY_DEAD_MISSES": "3",
                        "CANARY_PROGRESS_TIMEOUT_SECONDS": "30", "CANARY_WAIT_SECONDS": "30",
                        "CANARY_ON_DEAD": "restart", "MAX_BATCH_SIZE": "4",
                        # a slow tick leaves the step made just before the
                        # deadlines unread until after them (what hid the edge)
                        "CANARY_TICK_SECONDS": "2"})
    pid = s.worker_pid()
    out = []
    threads = [threading.Thread(target=lambda: out.append(infer(s, timeout=10)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert sorted(r.status for r in out) == [504, 504, 504], [r.body for r in out]
    s.wait_for(lambda: s.liveness()["worker_info"]["0"]["restart_count"] == 1, timeout=5,
               what="the dead worker restarted")
    assert msum(metrics(s), "mediad_worker_restarts_total", reason="canary_dead") == 1
    s.wait_ready(timeout=15)
    assert s.worker_pid() != pid
