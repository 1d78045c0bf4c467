#!/usr/bin/env python3
"""docs.pages: checks the language pages of docs/languages/ against the repository.

- README.md links docs/languages/README.md, and that index links every page of the directory;
- each tested page has the code blocks run.sh takes from it (<!-- file: NAME -->, see extract.py);
- the SDK versions the pages name are the ones the tests install: tests/interop/python/requirements.txt,
  tests/interop/js/package.json, tests/interop/go/go.mod;
- every relative link of the pages (and of the index) leads to a file that exists, and a #fragment into a
  Markdown file to one of its headings.

usage: check_pages.py REPO_ROOT      exit status 1 with one line per problem.
"""

import re
import sys
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract import blocks  # noqa: E402

# page -> the blocks tests/docs/run.sh (or CMake, for C) takes from it
TESTED = {
    "python.md": ["greet.py"],
    "javascript.md": ["greet.js"],
    "go.md": ["main.go"],
    "java.md": ["dependencies.xml", "Greet.java"],
    "c.md": ["greet.c"],
    "dotnet.md": [],
}
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(md: Path) -> set:
    out = set()
    in_code = False
    for line in md.read_text(encoding="utf-8").split("\n"):
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            out.add(slug(line.lstrip("#")))
    return out


def pins(root: Path) -> dict:
    req = (root / "tests/interop/python/requirements.txt").read_text()
    py = re.search(r"^durabletask==(\S+)", req, re.M).group(1)
    pkg = (root / "tests/interop/js/package.json").read_text()
    js = re.search(r'"@microsoft/durabletask-js":\s*"([^"]+)"', pkg).group(1)
    mod = (root / "tests/interop/go/go.mod").read_text()
    go = re.search(r"github\.com/microsoft/durabletask-go (v\S+)", mod).group(1)
    return {
        "python.md": [f"durabletask=={py}"],
        "javascript.md": [f"@microsoft/durabletask-js@{js}"],
        "go.md": [f"github.com/microsoft/durabletask-go@{go}"],
        "README.md": [f"`durabletask` {py}", f"`@microsoft/durabletask-js` {js}",
                      f"`github.com/microsoft/durabletask-go` {go}"],
    }


def check_links(md: Path, root: Path, problems: list):
    text = md.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # links inside code blocks are code
    for target in LINK.findall(text):
        if re.match(r"^[a-z]+:", target):
            continue  # an absolute URL: not ours to check
        path, _, frag = target.partition("#")
        dest = (md.parent / path).resolve() if path else md
        if not dest.exists():
            problems.append(f"{md.relative_to(root)}: link {target}: {path} does not exist")
        elif frag and dest.suffix == ".md" and frag not in anchors(dest):
            problems.append(f"{md.relative_to(root)}: link {target}: no heading #{frag} in {path or md.name}")


def main(argv) -> int:
    root = Path(argv[1]).resolve()
    langs = root / "docs/languages"
    index = langs / "README.md"
    problems = []

    if "docs/languages/README.md" not in (root / "README.md").read_text(encoding="utf-8"):
        problems.append("README.md: no link to docs/languages/README.md")
    index_text = index.read_text(encoding="utf-8")
    pages = sorted(p.name for p in langs.glob("*.md") if p.name != "README.md")
    for name in pages:
        if f"]({name})" not in index_text:
            problems.append(f"docs/languages/README.md: no link to {name}")
    for name in TESTED:
        if name not in pages:
            problems.append(f"docs/languages/{name} is missing")

    for name, wanted in TESTED.items():
        page = langs / name
        if not page.exists():
            continue
        try:
            found = blocks(page)
        except SystemExit as e:
            problems.append(str(e))
            continue
        for block in wanted:
            if block not in found:
                problems.append(f"docs/languages/{name}: no code block marked <!-- file: {block} -->")
        for block in found:
            if block not in wanted:
                problems.append(f"docs/languages/{name}: block {block} is marked but no test runs it")

    for name, strings in pins(root).items():
        page = langs / name
        text = page.read_text(encoding="utf-8") if page.exists() else ""
        for s in strings:
            if s not in text:
                problems.append(f"docs/languages/{name}: does not name {s}, the version the tests install")

    for md in [index] + [langs / p for p in pages]:
        check_links(md, root, problems)

    for p in problems:
        print(p)
    print(f"docs.pages: {len(pages)} pages, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
