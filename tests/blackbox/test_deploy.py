"""Black-box tests of what the deployment files rely on (deploy/, docs/operations.md).

- the systemd notify protocol (Type=notify, NotifyAccess=main, WatchdogSec=):
  READY=1 only after warmup, WATCHDOG=1 repeatedly at WATCHDOG_USEC/2, STATUS=
  lines, STOPPING=1 on SIGTERM, every datagram from the main PID;
- the watchdog stops, and /livez turns 503, when no worker can recover (restart
  budget exhausted everywhere); an operator reset revives the worker and the
  watchdog resumes;
- the exit codes the unit's Restart= policy is built on: 0 after a drain, 2 for
  a configuration error (RestartPreventExitStatus=2), 70 for CANARY_ON_DEAD=exit;
- the unit file passes `systemd-analyze verify`, and the unit and the
  Kubernetes manifests agree with the server's defaults and with each other.

The notify socket is a unix datagram socket the test binds in a temp dir;
libsystemd's sd_notify() sends to it exactly as it would to systemd's.
WATCHDOG_PID stays unset: sd_watchdog_enabled() would otherwise require it to
be the supervisor's pid."""
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import tempfile
import threading
import time

import pytest

from harness import AUTH, BIN, ROOT, Server, run_bin

UNIT = os.path.join(ROOT, "deploy", "systemd", "mediad.service")
DEPLOYMENT = os.path.join(ROOT, "deploy", "k8s", "deployment.yaml")
SERVICE = os.path.join(ROOT, "deploy", "k8s", "service.yaml")

WATCHDOG_USEC = 400000
WD_S = WATCHDOG_USEC / 1e6
STATUS_RE = re.compile(r"^STATUS=(serving|not serving|draining)"
                       r"(: \d+/\d+ workers ready, queue \d+)?$")


# --- a fake service manager's notify socket ---------------------------------

class NotifySocket:
    """Binds a unix datagram socket and records every notification line with
    its arrival time (monotonic) and the sender's pid (SCM_CREDENTIALS)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="mediad-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.lock = threading.Lock()
        self.entries = []  # (arrival, pid, line)
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        cred_size = struct.calcsize("iII")
        while not self.closed:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(cred_size))
            except socket.timeout:
                continue
            except OSError:
                return
            now = time.monotonic()
            pid = None
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", payload[:cred_size])[0]
            with self.lock:
                for line in data.decode("utf-8", "replace").split("\n"):
                    if line:
                        self.entries.append((now, pid, line))

    def lines(self):
        with self.lock:
            return list(self.entries)

    def times(self, line):
        return [t for t, _, l in self.lines() if l == line]

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hit = pred(self.lines())
            if hit:
                return hit
            time.sleep(0.02)
        raise AssertionError("timed out waiting for %s; notifications: %s" %
                             (what, [l for _, _, l in self.lines()][-40:]))

    def wait_line(self, line, timeout, after=0.0):
        return self.wait_for(lambda ls: next((t for t, _, l in ls if l == line and t >= after),
                                             None), timeout, line)

    def close(self):
        self.closed = True
        self.thread.join(2)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def notify(monkeypatch):
    # The server's environment is built from ours: make sure no service manager
    # of the test run itself leaks in.
    for var in ("WATCHDOG_PID", "WATCHDOG_USEC", "NOTIFY_SOCKET"):
        monkeypatch.delenv(var, raising=False)
    n = NotifySocket()
    yield n
    n.close()


def notify_env(n, **kw):
    env = {"NOTIFY_SOCKET": n.path, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
    env.update({k: str(v) for k, v in kw.items()})
    return env


def watchdog_gaps(times):
    return [b - a for a, b in zip(times, times[1:])]


# --- sd_notify ----------------------------------------------------------------

def test_notify_ready_after_warmup_watchdog_status_stopping(server_factory, notify):
    s = server_factory(notify_env(notify, MOCK_WARMUP_SECONDS="1.0"), wait=False)

    # While the worker warms up /startupz is 503; READY=1 must come after that.
    saw_503_at = None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        t = time.monotonic()
        r = s.get("/startupz")
        if r.status == 503:
            assert r.json()["phase"] in ("starting_workers", "warming_up")
            saw_503_at = t
        elif r.status == 200:
            break
        time.sleep(0.05)
    assert saw_503_at is not None, "never saw /startupz 503 during a 1 s warmup"
    t_ready = notify.wait_line("READY=1", 10)
    assert t_ready >= saw_503_at, "READY=1 was sent before warmup finished"
    # READY=1 is sent only once the server is serving.
    assert s.get("/health").status == 200
    assert s.get("/startupz").status == 200

    # WATCHDOG=1 keeps coming, at about WATCHDOG_USEC/2 (checked every tick).
    notify.wait_for(lambda ls: len([1 for t, _, l in ls if l == "WATCHDOG=1" and t > t_ready]) >= 8,
                    8, "8 WATCHDOG=1 after READY=1")
    # (the median, so that one datagram read late by this process does not count)
    gaps = watchdog_gaps(notify.times("WATCHDOG=1"))
    assert statistics.median(gaps) >= 0.8 * WD_S / 2, "pings faster than WATCHDOG_USEC/2: %r" % gaps
    assert statistics.median(gaps) < WD_S, "pings too slow for WATCHDOG_USEC: %r" % gaps

    # STATUS= lines: a one-line summary that ends up as "serving".
    notify.wait_line("STATUS=serving: 1/1 workers ready, queue 0", 5)
    statuses = [l for _, _, l in notify.lines() if l.startswith("STATUS=")]
    assert statuses and all(STATUS_RE.match(l) for l in statuses), statuses

    # SIGTERM: STOPPING=1 at once, then a clean exit 0.
    t_term = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    notify.wait_line("STOPPING=1", 5, after=t_term)
    assert s.proc.wait(20) == 0
    assert any(l == "STATUS=draining" and t >= t_term for t, _, l in notify.lines())

    # NotifyAccess=main is enough: every notification came from the supervisor.
    pids = {pid for _, pid, _ in notify.lines()}
    assert pids == {s.proc.pid}, "notifications from pids %r, supervisor is %d" % (
        pids, s.proc.pid)


def test_watchdog_stops_and_livez_503_when_restart_budget_exhausted(server_factory, notify):
    s = server_factory(notify_env(notify, MAX_WORKER_RESTART_COUNT=0))
    notify.wait_line("READY=1", 10)
    notify.wait_for(lambda ls: len([1 for _, _, l in ls if l == "WATCHDOG=1"]) >= 3, 5,
                    "3 WATCHDOG=1")
    assert s.get("/livez").status == 200

    os.kill(s.worker_pid(), signal.SIGKILL)
    s.wait_for(lambda: s.get("/livez").status == 503, 5, what="/livez 503")
    t_dead = time.monotonic()
    r = s.get("/livez")
    assert r.status == 503 and r.header("Retry-After")
    assert r.json()["status"] == "dead"
    info = s.liveness()["worker_info"]["0"]
    assert info["state"] == "failed" and not info["is_alive"]
    assert s.get("/health").status == 503

    # Many watchdog periods later: no WATCHDOG=1 since the budget ran out (a
    # datagram already on its way when /livez answered may still land).
    time.sleep(4 * WD_S)
    late = [t for t in notify.times("WATCHDOG=1") if t > t_dead + 0.3]
    assert not late, "WATCHDOG=1 kept coming %d times after every worker failed" % len(late)
    assert s.proc.poll() is None, "the supervisor must stay up (the manager decides)"
    notify.wait_line("STATUS=not serving: 0/1 workers ready, queue 0", 5)

    # An operator reset revives the failed worker (it does not need budget) and
    # the watchdog resumes.
    r = s.post("/tt-reset-device?device_id=0")
    assert r.status == 200, r.body
    s.wait_ready()
    assert s.get("/livez").status == 200
    t_back = time.monotonic()
    notify.wait_for(lambda ls: len([1 for t, _, l in ls if l == "WATCHDOG=1" and t > t_back]) >= 2,
                    5, "WATCHDOG=1 again after the reset")


def test_no_watchdog_pings_without_watchdog_usec(server_factory, notify):
    # Without WATCHDOG_USEC (no WatchdogSec=) nothing asks for pings: none are
    # sent, the rest of the protocol works as usual.
    s = server_factory({"NOTIFY_SOCKET": notify.path})
    notify.wait_line("READY=1", 10)
    time.sleep(1.0)
    assert not notify.times("WATCHDOG=1")
    t_term = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    notify.wait_line("STOPPING=1", 5, after=t_term)
    assert s.proc.wait(20) == 0


# --- exit codes the unit's Restart= policy relies on --------------------------

def run_mediad(env_extra, tmp_path, timeout=30):
    return run_bin(env_extra, cwd=str(tmp_path), timeout=timeout,
                   scrub=("NOTIFY_", "WATCHDOG_"))


@pytest.mark.parametrize("var,value", [
    ("CANARY_DEAD_MISSES", "0"),
    ("CANARY_ON_DEAD", "reboot"),
    ("DRAIN_TIMEOUT_SECONDS", "30s"),
])
def test_configuration_error_exits_2(tmp_path, var, value):
    r = run_mediad({var: value}, tmp_path)
    assert r.returncode == 2, r.stderr
    assert var in r.stderr.decode()


def test_canary_on_dead_exit_exits_70(server_factory):
    s = server_factory({"ENABLE_FAULT_INJECTION": "true", "CANARY_ON_DEAD": "exit"})
    assert s.post("/debug/faults", {"worker": "0", "fault": "error_ping"}).status == 200
    assert s.proc.wait(20) == 70
    s.reader.join(2)
    assert any("code 70" in l.get("msg", "") for l in s.log_lines(level="error")), s.log_text()


def test_drain_then_exit_0(server_factory):
    s = server_factory({"MOCK_LATENCY_MS": "600", "DRAIN_TIMEOUT_SECONDS": "10"})
    res = {}

    def req():
        res["r"] = s.post("/v1/images/generations", {"prompt": "p", "seed": 1})

    t = threading.Thread(target=req)
    t.start()
    s.wait_for(lambda: s.liveness()["worker_info"]["0"]["in_flight"] == 1, 5,
               what="request in flight")
    s.proc.send_signal(signal.SIGTERM)
    s.wait_for(lambda: s.get("/health").status == 503, 2, what="readiness 503 on SIGTERM")
    r = s.get("/health")
    assert r.json()["error"] == "draining" and r.header("Retry-After")
    assert s.get("/livez").status == 200
    t.join(15)
    assert res["r"].status == 200, res["r"].body
    assert s.proc.wait(20) == 0


# --- the deployment files -------------------------------------------------------

def unit_settings(path=UNIT):
    out = {}
    section = None
    for raw in open(path):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        k, _, v = line.partition("=")
        out.setdefault((section, k.strip()), []).append(v.strip())
    return out


def seconds(v):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|min)?", v)
    assert m, "cannot read the time span %r" % v
    return float(m.group(1)) * (60 if m.group(2) == "min" else 1)


@pytest.fixture(scope="module")
def defaults(tmp_path_factory):
    """Every setting's effective default, from the binary itself: GET /v1/config
    of a server started without settings (only a free port and the test key),
    in an empty directory (no ./.env)."""
    s = Server({}, cwd=str(tmp_path_factory.mktemp("defaults")))
    try:
        r = s.get("/v1/config", headers=AUTH)
        assert r.status == 200, r.body
        return r.json()
    finally:
        s.stop()


def same_value(env_text, default):
    if isinstance(default, bool):
        return env_text.lower() == ("true" if default else "false")
    if isinstance(default, (int, float)):
        return float(env_text) == float(default)
    return env_text == default


def test_systemd_unit_verifies(tmp_path):
    # systemd-analyze is part of systemd; the unit must be checked, not skipped.
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze not found: install the systemd package"
    # The only host-specific part is the binary's path: verify insists that
    # ExecStart= exists, so point it at the binary under test.
    text = open(UNIT).read()
    assert re.search(r"^ExecStart=/usr/local/bin/mediad$", text, re.M)
    unit = tmp_path / "mediad.service"
    unit.write_text(text.replace("ExecStart=/usr/local/bin/mediad",
                                 "ExecStart=" + os.path.abspath(BIN)))
    r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, timeout=60)
    out = (r.stdout + r.stderr).decode()
    # verify exits 0 on unknown keys and unparsable values; it only warns.
    assert r.returncode == 0 and not out.strip(), out


def test_systemd_unit_thresholds(defaults):
    u = unit_settings()
    svc = lambda k: u.get(("Service", k), [None])[-1]  # noqa: E731
    assert svc("Type") == "notify"
    assert svc("NotifyAccess") == "main"
    assert svc("KillMode") == "mixed"
    assert svc("Restart") == "on-failure"
    assert "2" in svc("RestartPreventExitStatus").split()
    assert "70" not in svc("RestartPreventExitStatus").split()
    assert svc("EnvironmentFile").startswith("-")
    assert svc("OOMPolicy") == "continue"
    # drain + worker shutdown (5 s) + HTTP flush (0.5 s) must fit.
    assert seconds(svc("TimeoutStopSec")) > defaults["DRAIN_TIMEOUT_SECONDS"] + 5 + 0.5
    # pings come every WatchdogSec/2, checked once per canary tick ...
    watchdog = seconds(svc("WatchdogSec"))
    assert watchdog / 2 > defaults["CANARY_TICK_SECONDS"]
    # ... and stop for up to 5.5 s while the workers are shut down.
    assert watchdog > 5 + 0.5
    assert seconds(svc("TimeoutStartSec")) >= 60
    assert svc("NoNewPrivileges") == "yes"
    assert svc("ProtectSystem") == "strict"
    assert svc("MemoryDenyWriteExecute") is None


def test_k8s_manifests_agree_with_the_server(defaults):
    try:
        import yaml
    except ImportError:
        pytest.fail("python3-yaml is needed to check deploy/k8s (apt-get install python3-yaml)")
    dep = yaml.safe_load(open(DEPLOYMENT))
    svc = yaml.safe_load(open(SERVICE))
    assert dep["kind"] == "Deployment" and svc["kind"] == "Service"
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["selector"].items() <= labels.items()

    # the Service reaches the container's named port 8000
    (port,) = svc["spec"]["ports"]
    assert port["port"] == 8000
    cports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert cports[port["targetPort"]] == 8000

    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SERVICE_PORT"] == "8000"
    # every variable is a real setting, and (except those set on purpose, and
    # those the harness itself sets for the defaults server) its default
    on_purpose = {"WORKER_THREADS", "SERVICE_HOST", "SERVICE_PORT", "LOG_LEVEL"}
    for name, value in env.items():
        assert name in defaults, "%s is not a mediad setting" % name
        if value is not None and name not in on_purpose:
            assert same_value(value, defaults[name]), "%s=%r but the default is %r" % (
                name, value, defaults[name])
    for name in ("CANARY_ENABLED", "CANARY_GATE_READINESS", "CANARY_DEEP_PROBE_ENABLED",
                 "CANARY_WAIT_SECONDS", "CANARY_PROBE_TIMEOUT_SECONDS",
                 "CANARY_DEEP_PROBE_TIMEOUT_SECONDS", "CANARY_TICK_SECONDS",
                 "CANARY_DEAD_MISSES", "CANARY_STARTUP_GRACE_SECONDS", "CANARY_DEEP_EVERY_N",
                 "CANARY_PROGRESS_TIMEOUT_SECONDS", "CANARY_ON_DEAD", "RESET_DEVICE_COMMAND",
                 "DRAIN_TIMEOUT_SECONDS", "MAX_WORKER_RESTART_COUNT"):
        assert name in env, "%s missing from the Deployment" % name

    wait = float(env["CANARY_WAIT_SECONDS"])
    timeout = float(env["CANARY_PROBE_TIMEOUT_SECONDS"])
    tick = float(env["CANARY_TICK_SECONDS"])
    misses = int(env["CANARY_DEAD_MISSES"])
    bound = wait + misses * (timeout + tick) + tick
    assert bound == 18

    sp, rp, lp = c["startupProbe"], c["readinessProbe"], c["livenessProbe"]
    assert sp["httpGet"]["path"] == "/startupz"
    assert rp["httpGet"]["path"] == "/health"
    assert lp["httpGet"]["path"] == "/livez"
    # startup covers the slowest planned warmup, like the unit's TimeoutStartSec
    unit_start = seconds(unit_settings()[("Service", "TimeoutStartSec")][-1])
    assert sp["periodSeconds"] * sp["failureThreshold"] >= unit_start
    # readiness adds little to the canary's own (already debounced) bound
    assert rp["periodSeconds"] * rp["failureThreshold"] + rp["timeoutSeconds"] <= bound / 3
    assert rp["failureThreshold"] >= 2
    # liveness is only 503 in a terminal state: generous, but not forever
    assert 30 <= lp["periodSeconds"] * lp["failureThreshold"] <= 300

    # preStop sleep, then drain, then worker shutdown, inside the grace period
    cmd = c["lifecycle"]["preStop"]["exec"]["command"]
    assert cmd[0] == "sleep"
    grace = pod["terminationGracePeriodSeconds"]
    assert grace > float(cmd[1]) + float(env["DRAIN_TIMEOUT_SECONDS"]) + 5 + 0.5

    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["resources"]["requests"] == c["resources"]["limits"]
