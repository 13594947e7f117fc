#!/usr/bin/env python3
"""The layering rule (`make lint`): a module imports only from its own layer or the
layers below it, as drawn in docs/DESIGN.md, and the modules' import graph has no cycle
(inside a layer either). A `crate::X` path in code (comments and doc comments are
skipped) whose layer is above the file's fails the check, and so does a cycle of
`crate::`/`super::` imports between files."""
import pathlib, re, sys

LAYERS = {  # top-level module -> layer, bottom (0) to top
    "shim": 0, "contain": 0,
    "lockfree": 1,
    "task": 2,
    "runtime": 3,
    "primitives": 4,
    "structured": 5,
    "api": 6,
    "future": 4,
    "time": 6,
    "chan": 6,
    "loom_async_api": 7,
}
TOP = 7  # lib.rs: the crate root, above everything

root = pathlib.Path(__file__).resolve().parent.parent / "src"
bad = []
for path in sorted(root.rglob("*.rs")):
    rel = path.relative_to(root)
    head = rel.parts[0].removesuffix(".rs")
    layer = TOP if rel.as_posix() == "lib.rs" else LAYERS.get(head)
    if layer is None:
        bad.append(f"{rel}: not in any layer (add its folder to .ci/lint-layers.py)")
        continue
    for n, line in enumerate(path.read_text().splitlines(), 1):
        code = line.split("//", 1)[0]
        for m in re.finditer(r"\bcrate::(\w+)", code):
            target = LAYERS.get(m.group(1))
            if target is not None and target > layer:
                bad.append(f"{rel}:{n}: layer {layer} ({head}) imports layer {target} ({m.group(1)}): {line.strip()}")
# The file-level import graph: every `crate::a::b::…` (or `super::…`) path resolved to the
# longest module path that is a file of the crate.
def module_of(rel):
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return "::".join(parts)

files = {module_of(p.relative_to(root)): p for p in root.rglob("*.rs") if p.name != "lib.rs"}
graph = {m: set() for m in files}
for m, path in files.items():
    parent = m.rsplit("::", 1)[0] if "::" in m else ""
    own = m if path.name == "mod.rs" else parent
    for line in path.read_text().splitlines():
        code = line.split("//", 1)[0]
        refs = [r for r in re.findall(r"\bcrate::((?:\w+::)*\w+)", code)]
        refs += [(own + "::" if own else "") + r for r in re.findall(r"\bsuper::((?:\w+::)*\w+)", code)]
        for r in refs:
            segs = r.split("::")
            for k in range(len(segs), 0, -1):
                target = "::".join(segs[:k])
                if target in files:
                    if target != m:
                        graph[m].add(target)
                    break

def find_cycle():
    state, stack = {}, []
    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                c = visit(t)
                if c:
                    return c
        stack.pop()
        state[m] = 2
        return None
    for m in sorted(graph):
        if m not in state:
            c = visit(m)
            if c:
                return c
    return None

cycle = find_cycle()
if cycle:
    bad.append("import cycle: " + " -> ".join(cycle))

for b in bad:
    print(b)
if bad:
    print(f"lint-layers: {len(bad)} import(s) climb a layer", file=sys.stderr)
    sys.exit(1)
print(f"lint-layers: every import stays in its layer or below; {len(files)} modules, no import cycle")
