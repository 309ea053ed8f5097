"""Every link in README.md and docs/*.md resolves inside the repository.

A fresh clone must be readable on its own: a relative link points at a file (and, with a
``#fragment``, at a heading) that exists in the tree, and nothing links outside it — no
``../`` out of the repository, no ``http(s)://`` at all. Text in code blocks and code spans
is not a link (``curl localhost:8080/...`` examples stay), so it is not checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
# [text](target "title") and ![alt](target); the text may hold one level of brackets
# and run over a line break. The target is <...> or has balanced parentheses.
_INLINE = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]"
    r"\(\s*(?P<target><[^>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
)
_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]*(?P<target><[^>\n]*>|\S+)", re.MULTILINE)
_AUTOLINK = re.compile(r"<(?P<target>[A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*)>")
_HTML = re.compile(
    r"<(?:a|img|source)\b[^>]*?\b(?:href|src)\s*=\s*[\"'](?P<target>[^\"']*)[\"']", re.I
)
# What GitHub turns into a link by itself, without any Markdown around it.
_BARE = re.compile(r"(?P<target>\b(?:(?:https?|ftp)://|www\.)[^\s<>()\[\]]+)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(?P<text>.*?)[ \t]*#*[ \t]*$", re.MULTILINE)
_HTML_ANCHOR = re.compile(r"<a\b[^>]*\b(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.I)


@dataclass(frozen=True)
class Link:
    line: int
    target: str


def documents(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def without_fences(text: str) -> str:
    """The Markdown with fenced code blocks blanked, line numbers kept."""
    lines = text.split("\n")
    fence: str | None = None
    for number, line in enumerate(lines):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            lines[number] = ""
        elif fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
            lines[number] = ""
    return "\n".join(lines)


def prose(text: str) -> str:
    """The Markdown without code (fenced blocks, code spans) or HTML comments, each
    character replaced by a space so that offsets and line numbers hold."""
    chars = list(without_fences(text))
    visible = "".join(chars)
    for start, end in [*_code_spans(visible), *(m.span() for m in _COMMENT.finditer(visible))]:
        for index in range(start, end):
            if chars[index] != "\n":
                chars[index] = " "
    return "".join(chars)


def _code_spans(text: str) -> Iterator[tuple[int, int]]:
    # A span opens with a run of backticks and closes with a run of the same length
    # within its paragraph; a run without its match is literal backticks.
    position = 0
    while (start := text.find("`", position)) != -1:
        run = len(text[start:]) - len(text[start:].lstrip("`"))
        closing = re.compile(r"(?<!`)" + "`" * run + r"(?!`)")
        found = closing.search(text, start + run)
        paragraph_end = text.find("\n\n", start)
        if found is None or (paragraph_end != -1 and found.start() > paragraph_end):
            position = start + run
            continue
        yield start, found.end()
        position = found.end()


def links(text: str) -> list[Link]:
    """Every link and image target outside code, and every bare URL, in the order they
    appear, each with its line."""
    visible = prose(text)
    found: list[tuple[int, str]] = []
    taken: list[tuple[int, int]] = []
    for pattern in (_INLINE, _DEFINITION, _AUTOLINK, _HTML):
        for match in pattern.finditer(visible):
            taken.append(match.span())
            target = match.group("target").strip()
            if target.startswith("<") and target.endswith(">"):
                target = target[1:-1]
            found.append((match.start("target"), target))
    for match in _BARE.finditer(visible):
        if not any(start <= match.start() < end for start, end in taken):
            # GitHub leaves trailing punctuation out of a bare URL.
            found.append((match.start(), match.group("target").rstrip(".,;:!?*_~'\"")))
    return [Link(visible.count("\n", 0, offset) + 1, target) for offset, target in sorted(found)]


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: link and code marks dropped, lower case,
    punctuation removed, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors a document's headings get (a repeated heading's with -1, -2, ...),
    and explicit ``<a name=...>`` ones. A ``# comment`` in a code block is no heading."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for match in _HEADING.finditer(without_fences(text)):
        base = slug(match.group("text"))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    found.update(_HTML_ANCHOR.findall(text))
    return found


def problems(document: Path, root: Path, text: str | None = None) -> list[str]:
    """One line per link of ``document`` (or of ``text`` standing in for it) that leaves
    ``root`` or does not resolve."""
    root = root.resolve()
    document = document.resolve()
    if text is None:
        text = document.read_text(encoding="utf-8")
    name = document.relative_to(root).as_posix()
    found = []
    for link in links(text):
        why = _problem(document, root, link.target)
        if why is not None:
            found.append(f"{name}:{link.line}: {link.target}: {why}")
    return found


def _problem(document: Path, root: Path, target: str) -> str | None:
    if not target:
        return "empty link"
    if _SCHEME.match(target) or target.startswith(("//", "www.")):
        return "leaves the repository (no absolute links: say it here, or link a file in the tree)"
    if target.startswith("/"):
        return "absolute path: link relative to this file"
    path_part, _, fragment = target.partition("#")
    path_part = unquote(path_part.split("?", 1)[0])
    resolved = (document.parent / path_part).resolve() if path_part else document
    if not resolved.is_relative_to(root):
        return "outside the repository"
    if not resolved.exists():
        return "no such file in the repository"
    if not fragment or resolved.suffix != ".md" or not resolved.is_file():
        return None
    if unquote(fragment).lower() not in anchors(resolved.read_text(encoding="utf-8")):
        return f"no heading #{fragment} in {resolved.relative_to(root).as_posix()}"
    return None


@pytest.mark.parametrize(
    "document", documents(ROOT), ids=lambda path: path.relative_to(ROOT).as_posix()
)
def test_every_link_resolves_inside_the_repository(document: Path) -> None:
    found = problems(document, ROOT)
    assert not found, "links that a fresh clone cannot follow:\n" + "\n".join(found)


def test_the_documents_are_there() -> None:
    # A renamed docs/ must not leave the test above checking nothing.
    names = {path.relative_to(ROOT).as_posix() for path in documents(ROOT)}
    assert {"README.md", "docs/protocol.md", "docs/operating.md", "docs/webhooks.md"} <= names
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = {link.target for link in links(readme)}
    for doc in (ROOT / "docs").glob("*.md"):
        assert f"docs/{doc.name}" in targets, f"README.md does not link docs/{doc.name}"


SAMPLE = """\
# Title

## Second `heading`, with *marks*

[ok](other.md) and ![image](img/pic.png) and [here](#title) and [there](other.md#part-two).
[gone](missing.md), [out](../outside.md), [web](https://example.com/x), <http://example.com>,
a bare https://example.com/y, [no anchor](other.md#nowhere), [rooted](/docs/other.md),
[over a
line break](missing-too.md) and <a href="http://example.com/z">html</a>.
[anchor](#second-heading-with-marks)

[ref]: mailto:ops@example.com

Code is not a link: `[x](nope.md)`, `https://example.com`, ``a `b` https://c.example``.
<!-- nor is a comment: [c](nope.md) -->

```sh
curl http://localhost:8080/payment   # [y](nope.md)
```

~~~
[z](nope.md)
~~~
"""


def test_the_checker_finds_each_kind_of_bad_link(tmp_path: Path) -> None:
    (tmp_path / "docs" / "img").mkdir(parents=True)
    (tmp_path / "docs" / "img" / "pic.png").write_bytes(b"")
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## Part two\n", encoding="utf-8")
    (tmp_path / "docs" / "sample.md").write_text(SAMPLE, encoding="utf-8")
    # Exists, but outside the root the check is given.
    (tmp_path / "outside.md").write_text("", encoding="utf-8")

    found = problems(tmp_path / "docs" / "sample.md", tmp_path / "docs")

    assert [": ".join(line.split(": ", 2)[:2]) for line in found] == [
        "sample.md:6: missing.md",
        "sample.md:6: ../outside.md",
        "sample.md:6: https://example.com/x",
        "sample.md:6: http://example.com",
        "sample.md:7: https://example.com/y",
        "sample.md:7: other.md#nowhere",
        "sample.md:7: /docs/other.md",
        "sample.md:9: missing-too.md",
        "sample.md:9: http://example.com/z",
        "sample.md:12: mailto:ops@example.com",
    ]
    assert found[1].endswith("outside the repository")
    assert "leaves the repository" in found[2]
    assert found[5].endswith("no heading #nowhere in other.md")


def test_a_broken_link_in_the_readme_is_reported() -> None:
    # The real README with one of its links broken, as an edit might leave it.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first = next(link for link in links(readme) if link.target.startswith("docs/"))
    broken = readme.replace(f"]({first.target})", f"]({first.target}x)", 1)

    assert problems(ROOT / "README.md", ROOT, broken) == [
        f"README.md:{first.line}: {first.target}x: no such file in the repository"
    ]
