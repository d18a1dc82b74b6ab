"""The llama runner's tokenizer against llama.cpp itself.

For each vocabulary kind (SentencePiece "llama" with byte tokens, and
byte-level BPE "gpt2" under each pre-tokenizer mediad implements), a
vocabulary-only GGUF file is written by build/mediad-tokvocab; a fixed set
of texts is tokenized by build/mediad-tokdump (mediad's tokenizer) and by
tests/clients/tokenize.mjs (llama.cpp through node-llama-cpp's prebuilt
binaries), with and without parsing special tokens. Any difference fails,
listing every differing text with both id lists. The test skips, saying
so, only when node-llama-cpp is not installed."""
import json
import os
import subprocess

import pytest

from harness import ROOT

CLIENTS = os.path.join(ROOT, "tests", "clients")
BUILD = os.path.join(ROOT, "build")
KINDS = ["spm", "llama3", "qwen2", "smollm", "gpt-2", "default"]

TEXTS = [
    "",
    "Hello world",
    " Hello world",
    "Hello  world",
    "Hello world ",
    "   leading spaces",
    "trailing spaces   ",
    " ",
    "  ",
    "a\n\nb",
    "line one\r\nline two\n",
    " \n \n x",
    "\ttab and\vvertical",
    "123",
    "12345",
    "2024 and 1234567 and 00",
    "3.14159 + 2,718",
    "don't I'm we're they've I'll he'd it's",
    "DON'T IT'S They'RE",
    "'hello' 'tis",
    "café naïve été",
    "日本語のテキスト",
    "привет мир",
    "καλημέρα κόσμε",
    "مرحبا بالعالم",
    "emoji 🎉🚀 done",
    "hello!!! ...?! https://www.example.com/a?b=c",
    "x^2+y=z $100 ~ok |pipe| <=> @home #tag",
    "`code` [list] {dict} (paren) _under_",
    "the quick brown fox jumps over the lazy dog",
    "The THE Th tHe",
    "e\u0301 combining, x\u200by zero width, \u00a0nbsp, \u3000ideo",
    "①②③ ½ Ⅻ ٣٤٥",
    "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n",
    "<s>hi</s> <s> x",
    "<tool> call <tool>",
    "a<|endoftext|>b",
    "<unk> and <0x41>",
]


# Pseudo-random texts from a fixed seed, built from pieces that stress the
# rules: words of the vocabularies, runs of spaces and newlines, digits,
# contractions in both cases, punctuation, non-Latin letters, marks, emoji
# and special tokens' texts.
_PIECES = ["the", "hello", "world", "Hello", "token", "tokenizer", "caf\u00e9", "na\u00efve",
           "\u65e5\u672c\u8a9e", "\u043f\u0440\u0438\u0432\u0435\u0442", "\u03ba\u03b1\u03bb\u03b7",
           "\u0645\u0631\u062d\u0628\u0627", " ", "  ", "   ", "\n", "\n\n", "\r\n", "\t", " \n",
           "1", "12", "123", "2024", "1234567", "'s", "'S", "'ll", "'re", "'ve", "'d", "'m", "'t",
           "'x", "!", "!!", "...", "?!", "://", "$", "+", "=", "<", ">", "^", "~", "|", "`", "_",
           "(", ")", "[", "]", "{", "}", ",", ".", "-", "\u2014", "\u00bd", "\u2460", "\u0663",
           "e\u0301", "\u200b", "\u00a0", "\u3000", "\U0001f389", "\U0001f680", "\u2581",
           "<|im_start|>", "<|im_end|>", "<s>", "</s>", "<tool>", "<|endoftext|>",
           "<|begin_of_text|>", "quick", "brown", "fox", "THE", "Th", "a", "s", "ing"]


def _random_texts(n, seed=15):
    import random
    rnd = random.Random(seed)
    return ["".join(rnd.choice(_PIECES) for _ in range(rnd.randint(1, 12))) for _ in range(n)]


TEXTS += _random_texts(300)


def _node_ok():
    return os.path.isdir(os.path.join(CLIENTS, "node_modules", "node-llama-cpp"))


@pytest.fixture(scope="module")
def tools():
    subprocess.run(["make", "-s", "DEVELOPER=1", "build/mediad-tokdump",
                    "build/mediad-tokvocab"], cwd=ROOT, check=True)
    return os.path.join(BUILD, "mediad-tokdump"), os.path.join(BUILD, "mediad-tokvocab")


def _mediad_ids(tokdump, gguf, tmp_path, special):
    files = []
    for i, text in enumerate(TEXTS):
        p = tmp_path / ("text-%d-%d.txt" % (special, i))
        p.write_bytes(text.encode("utf-8"))
        files.append(str(p))
    args = [tokdump] + (["--special"] if special else []) + [gguf] + files
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, "mediad-tokdump failed: " + r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def _llamacpp_ids(gguf, tmp_path):
    cases = [{"text": t, "special": s} for s in (False, True) for t in TEXTS]
    p = tmp_path / "cases.json"
    p.write_text(json.dumps(cases))
    r = subprocess.run(["node", "tokenize.mjs", gguf, str(p)], cwd=CLIENTS,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, "tokenize.mjs failed: " + r.stderr[-2000:]
    out = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("[")]
    assert len(out) == len(cases), r.stdout + r.stderr
    return out[:len(TEXTS)], out[len(TEXTS):]


@pytest.mark.parametrize("kind", KINDS)
def test_tokenizer_matches_llamacpp(kind, tools, tmp_path):
    if not _node_ok():
        pytest.skip("tests/clients/node_modules/node-llama-cpp is not installed "
                    "(npm ci in tests/clients)")
    tokdump, tokvocab = tools
    gguf = str(tmp_path / (kind + ".gguf"))
    subprocess.run([tokvocab, kind, gguf], check=True)
    want_plain, want_special = _llamacpp_ids(gguf, tmp_path)
    got_plain = _mediad_ids(tokdump, gguf, tmp_path, 0)
    got_special = _mediad_ids(tokdump, gguf, tmp_path, 1)
    diffs = []
    for special, want, got in ((0, want_plain, got_plain), (1, want_special, got_special)):
        for text, w, g in zip(TEXTS, want, got):
            if w != g:
                diffs.append("special=%d %r:\n  llama.cpp %s\n  mediad    %s" %
                             (special, text, w, g))
    assert not diffs, "%s: %d of %d texts differ from llama.cpp:\n%s" % (
        kind, len(diffs), 2 * len(TEXTS), "\n".join(diffs))
