"""Runner and device registries, the DEVICE setting, device plugins and the
restart path's device reset, on the real binary.

An unknown or unbuilt runner (MODEL_RUNNER=llama) and a device plugin the
loader refuses (missing file, no entry symbol, another ABI version) are
startup errors: exit status 2 and one line on stderr that says why. The cpu
backend built as a plugin (build/mediad-device-cpu.so) serves like the
built-in one. Test plugins come from tests/plugins/ (built by make under
build/tests/plugins/)."""
import os
import signal
import subprocess

import pytest

from harness import BIN

BUILD = os.path.dirname(os.path.abspath(BIN))
CPU_PLUGIN = os.path.join(BUILD, "mediad-device-cpu.so")
TEST_PLUGINS = os.path.join(BUILD, "tests", "plugins")
IMG = "/v1/images/generations"
DIT = {"MODEL_RUNNER": "dit", "DIT_PRESET": "tiny", "MODEL_SERVICE": "image"}
BUILT = ["mock", "dit", "sphinx", "flite"]


def run_bin(env_over, args=()):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MOCK_", "CANARY_", "MODEL_", "SERVICE_", "DEVICE"))}
    env.update({"SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": "0"})
    env.update(env_over)
    return subprocess.run([BIN, *args], env=env, capture_output=True, timeout=10)


def one_line_exit_2(p):
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert b"listening" not in p.stderr
    return lines[0]


@pytest.mark.parametrize("name", ["llama", "whisper", "sd"])
def test_unbuilt_runner_is_a_startup_error_naming_the_choices(name):
    line = one_line_exit_2(run_bin({"MODEL_RUNNER": name}))
    assert "MODEL_RUNNER" in line and name in line, line
    assert "expected one of " + ", ".join(BUILT) in line, line


def test_help_lists_only_built_runners():
    p = run_bin({}, args=["--help"])
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert "|".join(BUILT) + " " in out
    assert "llama" not in out
    section = out.split("runners built into this binary (MODEL_RUNNER):")[1]
    for name in BUILT:
        assert "\n  " + name + " " in section, section
    assert "DEVICE_PLUGIN" in out and "cpu|mock" in out


def test_unknown_device_is_a_startup_error():
    line = one_line_exit_2(run_bin({"DEVICE": "tpu"}))
    assert "DEVICE" in line and "tpu" in line and "cpu, mock" in line, line


def test_missing_plugin_file_is_a_startup_error(tmp_path):
    path = str(tmp_path / "no-such-plugin.so")
    line = one_line_exit_2(run_bin({"DEVICE_PLUGIN": path}))
    assert "DEVICE_PLUGIN" in line and path in line and "cannot load" in line, line


def test_plugin_without_entry_symbol_is_a_startup_error():
    path = os.path.join(TEST_PLUGINS, "device_noentry.so")
    line = one_line_exit_2(run_bin({"DEVICE_PLUGIN": path}))
    assert path in line and "no entry symbol mediad_device_plugin_v1" in line, line


def test_plugin_of_another_abi_version_is_a_startup_error():
    path = os.path.join(TEST_PLUGINS, "device_badabi.so")
    line = one_line_exit_2(run_bin({"DEVICE_PLUGIN": path}))
    assert path in line and "ABI version 999, expected 1" in line, line


def image(s):
    r = s.post(IMG, {"prompt": "a plugin", "width": 64, "height": 64, "seed": 3,
                     "image_return_format": "PNG"}, timeout=120)
    assert r.status == 200, r.body
    return r.json()["images"][0]


def test_cpu_plugin_serves_like_the_built_in_cpu_device(server_factory):
    builtin = server_factory(dict(DIT, WORKER_THREADS=2))
    want = image(builtin)
    builtin.stop()
    s = server_factory(dict(DIT, WORKER_THREADS=2, DEVICE_PLUGIN=CPU_PLUGIN))
    assert image(s) == want
    # the canary's shallow probes ping through the plugin's pool
    s.wait_for(lambda: s.liveness()["canary_alive"], what="canary alive")


def test_device_setting_picks_the_backend(server_factory):
    # the dit runner on the mock device (inline execution) computes the same image
    s = server_factory(dict(DIT, DEVICE="mock", WORKER_THREADS=2))
    a = image(s)
    s.stop()
    s = server_factory(dict(DIT, DEVICE="cpu", WORKER_THREADS=2))
    assert image(s) == a


def test_restarted_worker_resets_its_device(server_factory):
    s = server_factory({"ENABLE_FAULT_INJECTION": "true"})
    assert not [l for l in s.logs if "reset (incarnation" in l.get("msg", "")]
    os.kill(s.worker_pid(), signal.SIGKILL)
    s.wait_for(lambda: [l for l in s.logs
                        if "device 0 (mock) reset (incarnation 1)" in l.get("msg", "")],
               timeout=15, what="the restarted worker's device reset")
    s.wait_ready()
