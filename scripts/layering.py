#!/usr/bin/python3
"""scripts/layering.py: the layering check of `make lint` (scripts/lint.sh).

Reads the layer table from the fenced ```layers block of docs/architecture.md:

    layer 3 (api): api.c http.c      # a comment
                   router.c          # an indented line continues the layer
    layer 0: util.c buf.c log.c

one line per layer (the name in parentheses is optional), any order; a
higher number is a higher layer. Globs are
matched (fnmatch) against paths relative to src/, where * also crosses '/',
so "runners/*" covers src/runners/dit/kernels.c as well as src/runners/dit.c.
Every src/**/*.c must match exactly one layer, and so must every header that
has no .c of its own (device.h); a header with one (canary.h) belongs to its
.c (same folder first, then a unique basename anywhere under src/).

A file may use the files of its own layer and of lower layers only. It uses
a file when it includes that file's header ("x.h" resolved next to the file,
then in src/) or when its object has an undefined symbol that the other
file's object defines (nm on BUILD/src/**/*.o: calls and data alike). Same-
layer use is allowed, but the files that use each other in a circle (a
strongly connected component of more than one file, includes and symbols
together) are reported as a cycle.

Exit status: 0 clean, 1 violations or cycles, 2 the check could not run
(no layer block, no objects: run make first).

  --graph   print the file-level call graph (A -> B: the symbols) and exit
  --root, --src, --build, --doc  where the tree is (defaults: the repo of
            this script, ROOT/src, ROOT/build or $BUILD, ROOT/docs/architecture.md)
"""
import argparse
import fnmatch
import os
import re
import subprocess
import sys

LAYER_LINE = re.compile(r"^layer\s+(-?\d+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
MAX_SYMS = 4  # symbols named per edge in messages


class Fatal(Exception):
    """The check cannot run (exit 2)."""


# --- the layer table ------------------------------------------------------------

def read_layers(doc):
    """[(number, name, [globs])] from the ```layers block of doc."""
    try:
        with open(doc, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise Fatal("cannot read the layer table: %s" % e)
    m = re.search(r"^```layers[ \t]*\n(.*?)^```", text, re.M | re.S)
    if not m:
        raise Fatal("%s has no ```layers block" % doc)
    layers = []
    for n, raw in enumerate(m.group(1).splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if raw[:1].isspace() and layers:  # an indented line continues its layer
            layers[-1][2].extend(line.split())
            continue
        lm = LAYER_LINE.match(line)
        if not lm or not lm.group(3).split():
            raise Fatal("%s: cannot read layer line %d of the block: %r "
                        "(want: layer N: glob glob ...)" % (doc, n, line))
        num = int(lm.group(1))
        if any(num == l[0] for l in layers):
            raise Fatal("%s: layer %d is given twice" % (doc, num))
        layers.append((num, lm.group(2) or "", lm.group(3).split()))
    if not layers:
        raise Fatal("%s: the ```layers block is empty" % doc)
    return layers


def classify(rel, layers):
    """The layer numbers whose globs match rel (a path relative to src/)."""
    return [num for num, _, globs in layers
            if any(fnmatch.fnmatchcase(rel, g) for g in globs)]


# --- the tree -------------------------------------------------------------------

def walk(src, ext):
    out = []
    for d, dirs, files in os.walk(src):
        dirs.sort()
        for f in sorted(files):
            if f.endswith(ext):
                out.append(os.path.relpath(os.path.join(d, f), src))
    return out


class Tree:
    """The files under src/ (paths relative to src/) and who uses whom."""

    def __init__(self, src, build):
        self.src = src
        self.build = build
        self.sources = walk(src, ".c")
        self.headers = walk(src, ".h")
        by_base = {}
        for c in self.sources:
            by_base.setdefault(os.path.basename(c)[:-2], []).append(c)
        self.owner = {}  # header -> the .c it belongs to, or the header itself
        for h in self.headers:
            same = h[:-2] + ".c"
            cands = by_base.get(os.path.basename(h)[:-2], [])
            if same in self.sources:
                self.owner[h] = same
            elif len(cands) == 1:
                self.owner[h] = cands[0]
            else:
                self.owner[h] = h
        # the nodes: every .c, and every header without a .c
        self.files = self.sources + [h for h in self.headers if self.owner[h] == h]
        self.includes = {}  # (A, B) -> [header names]
        self.calls = {}     # (A, B) -> [symbols]

    def resolve(self, including, name):
        """The header (relative to src/) that #include "name" in including names."""
        for base in (os.path.dirname(including), ""):
            rel = os.path.normpath(os.path.join(base, name))
            if rel in self.owner:
                return rel
        return None

    def read_includes(self):
        for f in self.sources + self.headers:
            with open(os.path.join(self.src, f), encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            a = self.owner.get(f, f)
            for name in INCLUDE.findall(text):
                h = self.resolve(f, name)
                if h is None:
                    continue
                b = self.owner[h]
                if b != a:
                    self.includes.setdefault((a, b), [])
                    if name not in self.includes[(a, b)]:
                        self.includes[(a, b)].append(name)

    def read_symbols(self):
        """nm every object of a source; an object without a source (left over
        from a file that moved) is ignored."""
        defs, undefs, missing = {}, {}, []
        for c in self.sources:
            obj = os.path.join(self.build, "src", c[:-2] + ".o")
            if not os.path.exists(obj):
                missing.append(c)
                continue
            try:
                out = subprocess.run(["nm", "-P", obj], capture_output=True, text=True,
                                     check=True).stdout
            except (OSError, subprocess.CalledProcessError) as e:
                raise Fatal("nm %s failed: %s" % (obj, e))
            for line in out.splitlines():
                parts = line.split()
                if len(parts) < 2:
                    continue
                sym, kind = parts[0], parts[1]
                if kind == "U":
                    undefs.setdefault(c, set()).add(sym)
                elif kind.isupper() and kind not in "N":
                    defs.setdefault(sym, set()).add(c)
        if len(missing) == len(self.sources):
            raise Fatal("no objects under %s/src: build first (make -j2 DEVELOPER=1)"
                        % self.build)
        for a, syms in undefs.items():
            for sym in sorted(syms):
                for b in sorted(defs.get(sym, ())):
                    if b != a:
                        self.calls.setdefault((a, b), []).append(sym)
        return missing


# --- the graph ------------------------------------------------------------------

def sccs(nodes, edges):
    """Strongly connected components (Tarjan, iterative), each a sorted list."""
    succ = {n: [] for n in nodes}
    for a, b in edges:
        if a in succ and b in succ:
            succ[a].append(b)
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in nodes:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = counter[0]
                counter[0] += 1
                stack.append(v)
                on.add(v)
            recurse = False
            for j in range(i, len(succ[v])):
                w = succ[v][j]
                if w not in index:
                    work.append((v, j + 1))
                    work.append((w, 0))
                    recurse = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if recurse:
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return out


def short(items):
    items = list(items)
    more = len(items) - MAX_SYMS
    return ", ".join(items[:MAX_SYMS]) + (" (+%d more)" % more if more > 0 else "")


def layer_name(num, layers):
    for n, name, _ in layers:
        if n == num:
            return "layer %d%s" % (n, " (%s)" % name if name else "")
    return "layer %d" % num


def check(tree, layers, out):
    """Print every problem to out; the number of problems."""
    problems = 0
    layer_of = {}
    for f in tree.files:
        nums = classify(f, layers)
        if not nums:
            out.write("unplaced: src/%s matches no layer of the table: add it to a layer\n" % f)
            problems += 1
        elif len(nums) > 1:
            out.write("ambiguous: src/%s matches %s\n"
                      % (f, " and ".join(layer_name(n, layers) for n in nums)))
            problems += 1
        else:
            layer_of[f] = nums[0]
    for kind, edges in (("includes", tree.includes), ("calls", tree.calls)):
        for (a, b), what in sorted(edges.items()):
            if a not in layer_of or b not in layer_of or layer_of[a] >= layer_of[b]:
                continue
            if kind == "includes":
                used = "includes %s" % short(what)
            else:
                used = "uses %s" % short(what)
            out.write("upward: src/%s (%s) %s of src/%s (%s)\n"
                      % (a, layer_name(layer_of[a], layers), used, b,
                         layer_name(layer_of[b], layers)))
            problems += 1
    edges = set(tree.includes) | set(tree.calls)
    for comp in sorted(sccs(tree.files, sorted(edges))):
        if len(comp) < 2:
            continue
        problems += 1
        out.write("cycle: %d files use each other: %s\n"
                  % (len(comp), " ".join("src/" + f for f in comp)))
        members = set(comp)
        for a, b in sorted(edges):
            if a in members and b in members:
                how = []
                if (a, b) in tree.includes:
                    how.append("includes " + short(tree.includes[(a, b)]))
                if (a, b) in tree.calls:
                    how.append("uses " + short(tree.calls[(a, b)]))
                out.write("    src/%s -> src/%s: %s\n" % (a, b, "; ".join(how)))
    return problems


def print_graph(tree, out):
    targets = {}
    for (a, b), syms in tree.calls.items():
        targets.setdefault(a, []).append((b, syms))
    for a in sorted(tree.sources):
        out.write("src/%s\n" % a)
        for b, syms in sorted(targets.get(a, [])):
            out.write("    -> src/%s: %s\n" % (b, short(syms)))


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.path.dirname(here))
    ap.add_argument("--src")
    ap.add_argument("--build")
    ap.add_argument("--doc")
    ap.add_argument("--graph", action="store_true",
                    help="print the file-level call graph and exit")
    args = ap.parse_args(argv)
    root = args.root
    src = args.src or os.path.join(root, "src")
    build = args.build or os.path.join(root, os.environ.get("BUILD") or "build")
    doc = args.doc or os.path.join(root, "docs", "architecture.md")
    out = sys.stdout
    try:
        tree = Tree(src, build)
        tree.read_includes()
        missing = tree.read_symbols()
        if args.graph:
            print_graph(tree, out)
            return 0
        layers = read_layers(doc)
    except Fatal as e:
        sys.stderr.write("layering: %s\n" % e)
        return 2
    problems = check(tree, layers, out)
    for c in missing:
        out.write("unbuilt: src/%s has no object %s/src/%s.o (run make; does the Makefile "
                  "build it?)\n" % (c, os.path.relpath(build, root), c[:-2]))
        problems += 1
    if problems:
        out.write("layering: %d problem(s) against the layer table of %s\n"
                  % (problems, os.path.relpath(doc, root)))
        return 1
    out.write("layering: %d files, %d include and %d call edges, all downward, no cycle\n"
              % (len(tree.files), len(tree.includes), len(tree.calls)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
