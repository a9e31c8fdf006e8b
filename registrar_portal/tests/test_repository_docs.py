"""The repository explains itself: no pointer leads outside it, and every § pointer into docs/ resolves.

A maintainer who clones the repository must be able to follow every reference in it. Domain facts live in
docs/domain.md and machine figures in docs/performance.md, and code comments cite them by section number.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()

# Built from pieces so that this file does not match its own patterns.
_SHARED = "shared" + "/"
OUTSIDE_REFERENCES = re.compile(
    "|".join(
        [
            r"\.\./" + _SHARED,
            r"(?<![\w-])" + _SHARED + r"(DOMAIN|PERFORMANCE|STYLE|seeds|hooks)",
            r"\b(DOMAIN|PERFORMANCE|STYLE)\.md\b",
            r"\bseeds?/\d{3}_",
            r"\bseed (\d{3}|S\d)\b",
        ]
    )
)
SECTION_POINTER = re.compile(r"\b(domain|performance)\.md\s+((?:§[\d.]+(?:,\s*)?)+)")
HEADING = re.compile(r"^#{2,4} (§[\d.]+) ", re.MULTILINE)


def repository_files() -> list[str]:
    """Tracked files plus new ones not ignored (work in progress is checked too)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name and (ROOT / name).is_file()})


def text_of(name: str) -> str | None:
    try:
        data = (ROOT / name).read_bytes()
    except FileNotFoundError:
        return None  # removed since it was listed (someone's editor, a moved file)
    if b"\0" in data[:8192]:
        return None  # images, compiled catalogues
    return data.decode("utf-8", errors="replace")


def sections(doc: str) -> set[str]:
    return {match.rstrip(".") for match in HEADING.findall((ROOT / "docs" / doc).read_text(encoding="utf-8"))}


def pointers(text: str):
    for match in SECTION_POINTER.finditer(text):
        for section in re.findall(r"§[\d.]+", match.group(2)):
            yield match.group(1) + ".md", section.rstrip(".")


def test_nothing_in_the_repository_refers_to_files_outside_it():
    offenders = []
    for name in repository_files():
        if name == THIS_FILE:
            continue
        text = text_of(name)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE_REFERENCES.search(line):
                offenders.append(f"{name}:{number}: {line.strip()[:120]}")
    assert offenders == [], "point at docs/domain.md §N or docs/performance.md §N instead:\n" + "\n".join(offenders)


def test_the_documents_the_code_points_at_exist():
    for doc in ("domain.md", "architecture.md", "performance.md"):
        assert (ROOT / "docs" / doc).is_file(), doc
    assert (ROOT / "LICENSE").is_file()


def test_every_section_pointer_names_a_section_that_exists():
    known = {"domain.md": sections("domain.md"), "performance.md": sections("performance.md")}
    assert "§12.3" in known["domain.md"] and "§2" in known["performance.md"]
    dangling = []
    for name in repository_files():
        text = text_of(name)
        if text is None or name == THIS_FILE:
            continue
        for doc, section in pointers(text):
            if section not in known[doc]:
                dangling.append(f"{name}: {doc} {section}")
    assert dangling == [], "\n".join(dangling)


def test_domain_cross_references_resolve():
    """Inside docs/domain.md a bare "§5.3" means a section of the same page."""
    text = (ROOT / "docs" / "domain.md").read_text(encoding="utf-8")
    known = sections("domain.md")
    cited = {ref.rstrip(".") for ref in re.findall(r"§\d+(?:\.\d+)*", text)}
    # "§N" in the page's own how-to-read line is an example, not a pointer.
    cited.discard("§N")
    assert sorted(cited - known) == []
