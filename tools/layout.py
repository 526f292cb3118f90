#!/usr/bin/env python3
"""Layout check for the workspace's crates: import circles between source
files, file lengths and function lengths.

How it reads the code (no rust-analyzer, so say what it sees):
- one node per production source file of a crate (`src/**.rs`); a file that
  its parent declares only under `#[cfg(test)]` is a test file and left out,
  and everything from a file's first `#[cfg(test)]` on is its test part;
- an edge A -> B when A names an item of B: a `use` tree or an inline path
  starting `crate::`, `super::`, `self::` or a child module A declares;
  a path is resolved to the deepest module file it names, then through that
  module's `pub use` re-exports to the file that defines the item;
- a circle is a strongly connected component of more than one file.

`python3 tools/layout.py [--root DIR]` prints the report; `--check` exits 1 on a circle,
a production file over 1,200 lines before its test part, `src/main.rs` over
600 lines, or a function over 150 lines (test parts excluded).
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if "--root" in sys.argv:
    ROOT = os.path.abspath(sys.argv[sys.argv.index("--root") + 1])
MAX_FILE = 1200
MAX_MAIN = 600
MAX_FN = 150


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out = []
    for line in text.split("\n"):
        # drop // comments outside strings (approximation: first // not in a string)
        in_str = False
        cut = None
        i = 0
        while i < len(line):
            c = line[i]
            if c == '"' and (i == 0 or line[i - 1] != "\\"):
                in_str = not in_str
            elif not in_str and line.startswith("//", i):
                cut = i
                break
            i += 1
        out.append(line if cut is None else line[:cut])
    return "\n".join(out)


def production_part(text):
    m = re.search(r"^\s*#\[cfg\(test\)\]", text, flags=re.M)
    return text if m is None else text[: m.start()]


class Crate:
    def __init__(self, src):
        self.src = src
        self.files = {}  # module path tuple -> file path
        self.text = {}  # module path tuple -> production text (comments stripped)
        self.test_only = set()
        roots = [r for r in ("lib.rs", "main.rs") if os.path.exists(os.path.join(src, r))]
        for r in roots:
            self.walk((), os.path.join(src, r), r == "main.rs" and "lib.rs" in roots)

    def walk(self, modpath, path, is_bin):
        if is_bin:
            modpath = ("<bin>",)
        self.files[modpath] = path
        raw = open(path, encoding="utf-8").read()
        text = strip_comments(raw)
        self.text[modpath] = production_part(text)
        base = os.path.dirname(path)
        stem = os.path.basename(path)[:-3]
        if stem not in ("lib", "main", "mod"):
            base = os.path.join(base, stem)
        for m in re.finditer(r"^(\s*#\[[^\]]*\]\s*)*\s*(pub(\([^)]*\))?\s+)?mod\s+(\w+)\s*;", text, flags=re.M):
            name = m.group(4)
            attrs = m.group(0)
            cand = [os.path.join(base, name + ".rs"), os.path.join(base, name, "mod.rs")]
            pm = re.search(r'#\[path\s*=\s*"([^"]+)"\]', attrs)
            if pm:
                cand = [os.path.join(base, pm.group(1))]
            child = next((c for c in cand if os.path.exists(c)), None)
            if child is None:
                continue
            sub = modpath + (name,) if not is_bin else ("<bin>", name)
            if "cfg(test)" in attrs.replace(" ", "") or m.start() >= len(self.text[modpath]):
                self.test_only.add(sub)
            self.walk(sub, child, False)

    def is_test(self, mp):
        return any(mp[:i] in self.test_only for i in range(1, len(mp) + 1))


def expand_use(tree):
    """Expand a use tree `a::{b, c::{d, e}}` into lists of segments."""
    tree = re.sub(r"\s+", "", tree)
    out = []

    def rec(prefix, s):
        # split top-level commas
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
            else:
                cur += ch
        if cur:
            parts.append(cur)
        for p in parts:
            if not p:
                continue
            i = p.find("{")
            if i >= 0 and p.endswith("}"):
                head = p[:i].rstrip(":")
                segs = [x for x in head.split("::") if x]
                rec(prefix + segs, p[i + 1 : -1])
            else:
                p = p.split("as")[0] if re.search(r"\bas\b", p) else p
                p = re.sub(r"as\w+$", "", p)
                out.append(prefix + [x for x in p.split("::") if x])

    rec([], tree)
    return out


def resolve(crate, cur, segs):
    """Absolute module path + rest for a path written in module `cur`."""
    if not segs:
        return None
    base = list(cur if cur[:1] != ("<bin>",) else cur)
    head = segs[0]
    if head == "crate":
        mp, rest = [], segs[1:]
        if cur[:1] == ("<bin>",):
            mp = ["<bin>"]
    elif head == "self":
        mp, rest = base, segs[1:]
    elif head == "super":
        mp, rest = base, segs
        while rest and rest[0] == "super":
            mp = mp[:-1]
            rest = rest[1:]
    elif tuple(base + [head]) in crate.files:
        mp, rest = base, segs
    else:
        return None
    mp = tuple(mp)
    while rest and mp + (rest[0],) in crate.files:
        mp = mp + (rest[0],)
        rest = rest[1:]
    return mp, rest


def reexports(crate, mp):
    """name -> list of segments, for `pub use` items of module mp."""
    res = {}
    text = crate.text.get(mp, "")
    for m in re.finditer(r"\bpub(\([^)]*\))?\s+use\s+([^;]+);", text):
        for segs in expand_use(m.group(2)):
            if segs:
                res[segs[-1]] = segs
    return res


def target(crate, cur, segs, depth=0):
    r = resolve(crate, cur, segs)
    if r is None:
        return None
    mp, rest = r
    if rest and depth < 8:
        rx = reexports(crate, mp)
        if rest[0] in rx:
            t = target(crate, mp, rx[rest[0]], depth + 1)
            if t is not None:
                return t
    return mp


def edges(crate):
    g = {}
    for mp, text in crate.text.items():
        if crate.is_test(mp):
            continue
        out = set()
        paths = []
        for m in re.finditer(r"\buse\s+([^;]+);", text):
            paths.extend(expand_use(m.group(1)))
        body = re.sub(r"\buse\s+[^;]+;", "", text)
        for m in re.finditer(r"\b((?:crate|super|self|\w+)(?:::\w+)+)", body):
            paths.append(m.group(1).split("::"))
        for segs in paths:
            t = target(crate, mp, segs)
            if t is not None and t != mp and t in crate.files and not crate.is_test(t):
                out.add(t)
        g[mp] = out
    return g


def sccs(g):
    index, low, stack, on, res = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            res.append(comp)

    for v in list(g):
        if v not in index:
            strong(v)
    return res


def long_functions(text):
    """(name, lines) of fn bodies longer than MAX_FN."""
    res = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)", lines[i])
        if m:
            depth, started, j = 0, False, i
            while j < len(lines):
                for ch in lines[j]:
                    if ch == "{":
                        depth += 1
                        started = True
                    elif ch == "}":
                        depth -= 1
                if started and depth <= 0:
                    break
                if not started and lines[j].rstrip().endswith(";"):
                    break
                j += 1
            n = j - i + 1
            if started and n > MAX_FN:
                res.append((m.group(6), i + 1, n))
            i = i + 1 if not started else j + 1
            continue
        i += 1
    return res


def main():
    check = "--check" in sys.argv
    problems = []
    srcs = [os.path.join(ROOT, "src")] if os.path.isdir(os.path.join(ROOT, "src")) else []
    cdir = os.path.join(ROOT, "crates")
    for c in sorted(os.listdir(cdir)) if os.path.isdir(cdir) else []:
        if os.path.isdir(os.path.join(cdir, c, "src")):
            srcs.append(os.path.join(cdir, c, "src"))
    for src in srcs:
        crate = Crate(src)
        g = edges(crate)
        rel = lambda mp: os.path.relpath(crate.files[mp], ROOT)
        for comp in sccs(g):
            if len(comp) > 1:
                names = sorted(rel(m) for m in comp)
                problems.append("import circle of %d files: %s" % (len(names), ", ".join(names)))
                inner = set(comp)
                for m in sorted(comp, key=rel):
                    for t in sorted(g[m] & inner, key=rel):
                        print("    %s -> %s" % (rel(m), rel(t)))
        for mp, path in crate.files.items():
            if crate.is_test(mp):
                continue
            n = crate.text[mp].count("\n")
            limit = MAX_MAIN if os.path.relpath(path, ROOT) == "src/main.rs" else MAX_FILE
            if n > limit:
                problems.append("%s: %d lines before its test part (limit %d)" % (os.path.relpath(path, ROOT), n, limit))
            for name, line, count in long_functions(crate.text[mp]):
                problems.append("%s:%d: fn %s is %d lines (limit %d)" % (os.path.relpath(path, ROOT), line, name, count, MAX_FN))
    for p in problems:
        print(p)
    if not problems:
        print("layout: no import circle, no file or function over its limit")
    if check and problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
