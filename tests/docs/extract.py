#!/usr/bin/env python3
"""Writes the code blocks of a docs page that are marked as files, so that tests run the page's own code.

A marked block is a fenced code block whose fence line directly follows a line

    <!-- file: NAME -->

(blank lines between them are allowed). The block's text, exactly as it stands between the fences, is written to
OUTDIR/NAME. NAME is a plain file name (no directories). The page renders the marker as nothing.

usage: extract.py PAGE.md OUTDIR [NAME...]
  With NAMEs, each of them must be marked in the page (exit status 1 names the missing ones); only those are
  written. Without NAMEs, every marked block is written. A NAME marked twice, a marker not followed by a fence,
  and a fence that is never closed are errors too.
"""

import re
import sys
from pathlib import Path

MARKER = re.compile(r"^<!--\s*file:\s*([A-Za-z0-9_.-]+)\s*-->\s*$")
FENCE = re.compile(r"^(```+|~~~+)")


def blocks(page: Path) -> dict:
    lines = page.read_text(encoding="utf-8").split("\n")
    found = {}
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        i += 1
        if not m:
            continue
        name = m.group(1)
        while i < len(lines) and not lines[i].strip():
            i += 1
        f = FENCE.match(lines[i]) if i < len(lines) else None
        if not f:
            raise SystemExit(f"{page}: the marker for {name} is not followed by a fenced code block")
        fence = f.group(1)
        start = i + 1
        i = start
        while i < len(lines) and lines[i].rstrip() != fence:
            i += 1
        if i == len(lines):
            raise SystemExit(f"{page}: the code block for {name} is never closed")
        if name in found:
            raise SystemExit(f"{page}: {name} is marked twice")
        found[name] = "\n".join(lines[start:i]) + "\n"
        i += 1
    return found


def main(argv) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    page, outdir, wanted = Path(argv[1]), Path(argv[2]), argv[3:]
    found = blocks(page)
    missing = [n for n in wanted if n not in found]
    if missing:
        print(f"{page}: no code block marked <!-- file: NAME --> for {', '.join(missing)}", file=sys.stderr)
        return 1
    outdir.mkdir(parents=True, exist_ok=True)
    for name in wanted or found:
        (outdir / name).write_text(found[name], encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
