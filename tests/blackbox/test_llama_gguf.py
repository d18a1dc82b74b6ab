"""The project's own GGUF files are real GGUF files (issue 15).

build/mediad-mkgguf writes the seeded models the llama runner's tests and
benchmarks use. llama.cpp (node-llama-cpp 3.21.1, pinned in
tests/clients/package-lock.json and installed by scripts/install-deps.sh)
must load every architecture and tokenizer kind the tool writes and generate
from it; a file the tool writes with a tensor left out must be refused by
llama.cpp too (so the loader's refusal tests model a real defect)."""
import json
import os
import subprocess

import pytest

from harness import BIN

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MKGGUF = os.path.join(os.path.dirname(os.path.abspath(BIN)), "mediad-mkgguf")
CLIENTS = os.path.join(ROOT, "tests", "clients")

KINDS = [
    ("llama", "llama", "llama-bpe", "F32"),
    ("llama", "llama", "llama-bpe", "F16"),
    ("llama", "gpt2", "llama-bpe", "BF16"),
    ("qwen2", "gpt2", "qwen2", "F16"),
    ("llama", "gpt2", "smollm", "F32"),
]


def mkgguf(path, *args):
    p = subprocess.run([MKGGUF, *args, "-o", str(path)], capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    return str(path)


def llama_cpp(files, text="the quick brown fox, 123!", prompt="the quick brown fox"):
    if not os.path.isdir(os.path.join(CLIENTS, "node_modules", "node-llama-cpp")):
        pytest.fail("node-llama-cpp is not installed: run scripts/install-deps.sh")
    p = subprocess.run(["node", os.path.join(CLIENTS, "llama_generate.mjs"), text, prompt, *files],
                       capture_output=True, timeout=300, cwd=CLIENTS)
    return p, [json.loads(l) for l in p.stdout.decode().splitlines() if l.startswith("{")]


def test_llama_cpp_loads_every_kind_mkgguf_writes(tmp_path):
    files = [mkgguf(tmp_path / ("%s-%s-%s-%s.gguf" % k), "--arch", k[0], "--tokenizer", k[1],
                    "--pre", k[2], "--type", k[3], "--seed", "7") for k in KINDS]
    p, out = llama_cpp(files)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    assert [o["file"] for o in out] == files
    for o in out:
        assert len(o["tokens"]) >= 5, o
        assert o["greedy"].strip(), o


def test_llama_cpp_refuses_a_file_missing_a_tensor(tmp_path):
    f = mkgguf(tmp_path / "omit.gguf", "--omit", "blk.1.ffn_up.weight")
    p, out = llama_cpp([f])
    assert p.returncode != 0 and not out
    assert "ffn_up" in p.stderr.decode() + p.stdout.decode()
