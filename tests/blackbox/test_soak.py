"""The chaos soak, short version for CI (issue 8, item 5).

Runs tests/soak/soak.py for 40 s of chaos against the real binary: two mock
workers under steady traffic while random faults (hangs, crashes, SIGSTOP,
corrupt deep probes, slow batches, failing probes, SIGKILL) hit them. The
script checks that no request is lost or answered wrongly, that readiness
matches reality within the detection bound at every sample, that the
supervisor's RSS and fds stay flat and that the server ends serving; it
exits 0 only when all of that holds. `make soak SOAK_SECONDS=N` runs it long."""
import os
import subprocess
import sys

from harness import BIN

SOAK = os.path.join(os.path.dirname(__file__), "..", "soak", "soak.py")
SECONDS = 40


def test_chaos_soak_short():
    env = dict(os.environ, MEDIAD_BIN=os.path.abspath(BIN))
    # chaos + warm-up + recovery + settle + shutdown stay well under this
    proc = subprocess.run([sys.executable, SOAK, "--seconds", str(SECONDS)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=SECONDS + 180)
    out = proc.stdout.decode("utf-8", "replace")
    print(out)
    assert proc.returncode == 0, "chaos soak failed (exit %d):\n%s" % (proc.returncode,
                                                                       out[-6000:])
    assert "RESULT: PASS" in out
    assert "\nlost          0\n" in out
