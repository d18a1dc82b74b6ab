"""Unit tests of scripts/layering.py (run by `make lint`): a fake tree of a
few C files, compiled with gcc so that nm sees real objects, and a layer
table; a clean case, an upward include and call, a cycle, a file in no
layer, files moved into subfolders, and --graph."""
import importlib.util
import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "..", "scripts", "layering.py")
spec = importlib.util.spec_from_file_location("layering", SCRIPT)
layering = importlib.util.module_from_spec(spec)
spec.loader.exec_module(layering)

LAYERS = """# arch

```layers
layer 2 (top):  main.c
layer 1 (mid):  server.c worker.c runners/*
layer 0 (util): util.c util_types.h
```
"""

# A clean tree: main -> server -> util, server -> worker, runners -> util.
CLEAN = {
    "util.h": '#include "util_types.h"\nint util_add(int a, int b);\n',
    "util_types.h": "typedef int util_int;\n",
    "util.c": '#include "util.h"\nint util_add(int a, int b) { return a + b; }\n',
    "worker.h": "int worker_run(int x);\n",
    "worker.c": '#include "worker.h"\n#include "util.h"\n'
                "int worker_run(int x) { return util_add(x, 1); }\n",
    "server.h": "int server_serve(int x);\n",
    "server.c": '#include "server.h"\n#include "worker.h"\n'
                "int server_serve(int x) { return worker_run(x); }\n",
    "main.c": '#include "server.h"\nint main(void) { return server_serve(0); }\n',
}


def make_tree(tmp_path, files, layers=LAYERS):
    src = tmp_path / "src"
    build = tmp_path / "build"
    for rel, text in files.items():
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    for rel in files:
        if rel.endswith(".c"):
            obj = build / "src" / (rel[:-2] + ".o")
            obj.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["gcc", "-c", "-iquote", str(src), "-o", str(obj),
                            str(src / rel)], check=True)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "architecture.md").write_text(layers)
    return tmp_path


def run(capsys, root, *args):
    rc = layering.main(["--root", str(root), *args])
    return rc, capsys.readouterr().out


def test_clean_tree_passes(tmp_path, capsys):
    rc, out = run(capsys, make_tree(tmp_path, CLEAN))
    assert rc == 0, out
    assert "all downward, no cycle" in out


def test_upward_call_and_include_are_violations(tmp_path, capsys):
    files = dict(CLEAN)
    files["util.c"] = ('#include "util.h"\n#include "server.h"\n'
                      "int util_add(int a, int b) { return a + b + server_serve(0); }\n")
    rc, out = run(capsys, make_tree(tmp_path, files))
    assert rc == 1, out
    assert ("upward: src/util.c (layer 0 (util)) includes server.h of src/server.c "
            "(layer 1 (mid))") in out
    assert ("upward: src/util.c (layer 0 (util)) uses server_serve of src/server.c "
            "(layer 1 (mid))") in out
    # util -> server -> worker -> util is a circle as well
    assert "cycle: 3 files use each other: src/server.c src/util.c src/worker.c" in out


def test_same_layer_cycle_is_reported_with_its_edges(tmp_path, capsys):
    files = dict(CLEAN)
    files["worker.c"] = ('#include "worker.h"\n#include "server.h"\n#include "util.h"\n'
                        "int worker_run(int x)\n"
                        "{ return x ? server_serve(x - 1) : util_add(x, 1); }\n")
    rc, out = run(capsys, make_tree(tmp_path, files))
    assert rc == 1, out
    assert "upward" not in out  # same layer: allowed, but not in a circle
    assert "cycle: 2 files use each other: src/server.c src/worker.c" in out
    assert "    src/worker.c -> src/server.c: includes server.h; uses server_serve" in out
    assert "    src/server.c -> src/worker.c: includes worker.h; uses worker_run" in out


def test_a_file_in_no_layer_is_an_error(tmp_path, capsys):
    files = dict(CLEAN)
    files["newthing.c"] = '#include "util.h"\nint newthing(void) { return util_add(1, 2); }\n'
    files["orphan.h"] = "int orphan;\n"
    rc, out = run(capsys, make_tree(tmp_path, files))
    assert rc == 1, out
    assert "unplaced: src/newthing.c matches no layer of the table" in out
    assert "unplaced: src/orphan.h matches no layer of the table" in out


def test_files_in_subfolders_and_a_stale_object(tmp_path, capsys):
    files = dict(CLEAN)
    files["runners/dit/dit.h"] = "int dit_run(int x);\n"
    files["runners/dit/dit.c"] = ('#include "dit.h"\n#include "util.h"\n'
                                 "int dit_run(int x) { return util_add(x, 2); }\n")
    files["server.c"] = ('#include "server.h"\n#include "worker.h"\n#include "runners/dit/dit.h"\n'
                        "int server_serve(int x) { return worker_run(x) + dit_run(x); }\n")
    root = make_tree(tmp_path, files)
    # an object left behind by a file that moved defines the same symbol
    stale = root / "build" / "src" / "runners" / "dit.o"
    subprocess.run(["gcc", "-c", "-o", str(stale), str(root / "src" / "runners" / "dit" / "dit.c"),
                    "-iquote", str(root / "src")], check=True)
    rc, out = run(capsys, root)
    assert rc == 0, out
    rc, out = run(capsys, root, "--graph")
    assert rc == 0
    assert "src/server.c\n    -> src/runners/dit/dit.c: dit_run\n" in out
    assert "src/runners/dit.c" not in out
    # a file under a layer-0 glob that uses a layer-1 file in a subfolder
    files["util.c"] = ('#include "util.h"\n#include "runners/dit/dit.h"\n'
                      "int util_add(int a, int b) { return a + b; }\n")
    rc, out = run(capsys, make_tree(tmp_path / "again", files))
    assert rc == 1
    assert "upward: src/util.c (layer 0 (util)) includes runners/dit/dit.h of " \
           "src/runners/dit/dit.c (layer 1 (mid))" in out


def test_unbuilt_source_and_missing_table(tmp_path, capsys):
    root = make_tree(tmp_path, CLEAN)
    (root / "src" / "worker2.c").write_text("int worker2;\n")
    rc, out = run(capsys, root)
    assert rc == 1
    assert "unplaced: src/worker2.c" in out
    assert "unbuilt: src/worker2.c has no object build/src/worker2.o" in out
    (root / "docs" / "architecture.md").write_text("# no table\n")
    rc, _ = run(capsys, root)
    assert rc == 2


@pytest.mark.parametrize("bad", ["layer x: main.c", "layer 1 main.c", "layer 1:"])
def test_unreadable_layer_line(tmp_path, capsys, bad):
    root = make_tree(tmp_path, CLEAN, "```layers\n%s\n```\n" % bad)
    rc, _ = run(capsys, root)
    assert rc == 2
