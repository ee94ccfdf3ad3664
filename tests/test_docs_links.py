"""The README and docs/ pages: every relative link and #anchor resolves, every page is reachable
from the README, and the README keeps the two set-up commands that CI and the project rules use."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)\)")


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def prose(text: str) -> str:
    """The text outside fenced code blocks and inline code spans, where links are links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    for match in re.finditer(r"^#{1,6} (.+)$", text, flags=re.M):
        base = slug(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if not dest.exists():
            broken.append(f"{page.name}: {target} (no such file)")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{page.name}: {target} (no such heading)")
    return broken


def test_slug_follows_github() -> None:
    assert slug("Long videos: resume, workers, Ray") == "long-videos-resume-workers-ray"
    assert slug("Web page (`vidscale serve`)") == "web-page-vidscale-serve"
    assert slug("Anti-flicker (`--temporal [STRENGTH]`)") == "anti-flicker---temporal-strength"


def test_checker_finds_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Top\n\n[ok](#top) [bad](#nowhere) [gone](b.md) `[code](x.md)`\n")
    assert broken_links(tmp_path / "a.md") == [
        "a.md: #nowhere (no such heading)",
        "a.md: b.md (no such file)",
    ]


def test_every_link_and_anchor_resolves() -> None:
    broken = [line for page in pages() for line in broken_links(page)]
    assert broken == []


def test_every_docs_page_is_linked_from_the_readme() -> None:
    targets = LINK.findall(prose((ROOT / "README.md").read_text()))
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in targets}
    orphans = [p.name for p in pages()[1:] if p.resolve() not in linked]
    assert orphans == []


def test_readme_keeps_the_set_up_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    for command in ("bash scripts/demo.sh", "bash scripts/test.sh"):
        assert any(line.startswith(command + " ") or line == command for line in lines), command
