#!/usr/bin/env python3
"""The layering rule (`make lint`): a module imports only from its own layer or the
layers below it, as drawn in docs/DESIGN.md. A `crate::X` path in code (comments and doc
comments are skipped) whose layer is above the file's fails the check."""
import pathlib, re, sys

LAYERS = {  # top-level module -> layer, bottom (0) to top
    "shim": 0, "contain": 0,
    "lockfree": 1,
    "task": 2,
    "runtime": 3,
    "primitives": 4,
    "structured": 5,
    "api": 6,
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
for b in bad:
    print(b)
if bad:
    print(f"lint-layers: {len(bad)} import(s) climb a layer", file=sys.stderr)
    sys.exit(1)
print("lint-layers: every import stays in its layer or below")
