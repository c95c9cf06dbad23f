#!/usr/bin/env python3
"""Prints the packages of a minbase debootstrap (Priority: required, apt, and what they depend on) from
this machine's APT lists, one per line, so that they can be fetched with apt-get download."""
import re
import subprocess


def paragraphs():
    text = subprocess.run(["apt-cache", "dumpavail"], check=True, capture_output=True, text=True).stdout
    for block in text.split("\n\n"):
        fields = {}
        for line in block.splitlines():
            if line and not line[0].isspace() and ":" in line:
                k, v = line.split(":", 1)
                fields[k] = v.strip()
        if "Package" in fields and fields.get("Architecture") in ("amd64", "all"):
            yield fields


packages, provides = {}, {}
for p in paragraphs():
    packages[p["Package"]] = p
    for v in p.get("Provides", "").split(","):
        name = re.sub(r"\s*\(.*", "", v).strip()
        if name:
            provides.setdefault(name, p["Package"])

# debootstrap adds apt, and usr-is-merged for a merged /usr
wanted = {n for n, p in packages.items() if p.get("Priority") == "required"} | {"apt", "usr-is-merged"}
todo = list(wanted)
while todo:
    p = packages.get(todo.pop())
    if not p:
        continue
    for field in ("Pre-Depends", "Depends"):
        for dep in p.get(field, "").split(","):
            first = dep.split("|")[0].strip()
            name = re.sub(r"[\s(:].*", "", first)
            if not name:
                continue
            name = name if name in packages else provides.get(name, name)
            if name in packages and name not in wanted:
                wanted.add(name)
                todo.append(name)
print("\n".join(sorted(w for w in wanted if w in packages)))
