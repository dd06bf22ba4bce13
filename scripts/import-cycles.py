#!/usr/bin/env python3
"""Reports import cycles between the top-level modules (files) of each crate: a module that
names `crate::other` depends on `other`. A parent's own submodules are part of it."""
import pathlib, re, sys

def modules(src):
    out = {}
    for f in src.rglob('*.rs'):
        rel = f.relative_to(src).with_suffix('')
        top = rel.parts[0]
        if top in ('lib', 'main'):
            continue
        out.setdefault(top, []).append(f)
    return out

def cycles(crate):
    src = crate / 'src'
    mods = modules(src)
    deps = {m: set() for m in mods}
    for m, files in mods.items():
        for f in files:
            text = f.read_text()
            text = re.sub(r'#\[cfg\(test\)\]\s*mod tests \{.*', '', text, flags=re.S)
            for dep in re.findall(r'\bcrate::([a-z_0-9]+)', text):
                if dep in mods and dep != m:
                    deps[m].add(dep)
            for group in re.findall(r'\buse crate::\{([^;]*)\}', text, flags=re.S):
                for dep in re.findall(r'(?:^|[,{\s])([a-z_0-9]+)::', group):
                    if dep in mods and dep != m:
                        deps[m].add(dep)
    found, seen = [], set()
    def walk(node, path):
        for nxt in sorted(deps[node]):
            if nxt in path:
                cyc = path[path.index(nxt):]
                key = frozenset(cyc)
                if key not in seen:
                    seen.add(key)
                    found.append(cyc + [nxt])
            else:
                walk(nxt, path + [nxt])
    for m in sorted(deps):
        walk(m, [m])
    return found

bad = 0
for crate in sorted(pathlib.Path('crates').iterdir()):
    if (crate / 'src').is_dir():
        for cyc in cycles(crate):
            bad += 1
            print(f'{crate.name}: ' + ' -> '.join(cyc))
sys.exit(1 if bad else 0)
