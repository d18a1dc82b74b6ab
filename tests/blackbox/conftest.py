"""pytest fixtures of the black-box tests; the helpers themselves are in
harness.py (the test files import them from there)."""
import pytest

from harness import FAST, Server


@pytest.fixture
def server_factory():
    """start(env=None, args=(), wait=True, cwd=None, **settings): a Server
    with FAST settings plus env and settings, killed at teardown."""
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
