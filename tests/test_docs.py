"""The repository carries its own documentation: every `docs/<file>.md#<anchor>` cited anywhere must name an
existing file and a heading in it (GitHub's slug), and nothing may cite notes kept outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUFFIXES = {".py", ".md", ".j2", ".toml", ".ini"}
# Generated or environment folders at the top level; reports/ holds generated reports beside its README.
SKIPPED_TOP = {"build", "dist", "runs", "data", "tmp"}

CITATION = re.compile(r"docs/([\w.-]+\.md)(?:#([\w-]+))?")
# Notes that live outside the repository. Written so that this file does not match itself.
OUTSIDE_NOTES = re.compile(r"SPEC\s*§|SPEC\.md|DESIGN\.md|CPU-FEASIBILIT[Y]|SPOT\.md|RECOGNITION\.md|\.\./shared")
# Markdown links inside docs/: "(#anchor)" within the page, "(other.md#anchor)" to a sibling page.
RELATIVE_LINK = re.compile(r"\]\(([\w.-]+\.md)?(?:#([\w-]+))?\)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^ {0,3}(```|~~~)")

# The anchors the whole team cites (fixed in advance): they must keep existing.
FIXED_ANCHORS = {
    "reference.md": [
        "data-format", "clevrtex", "coco-panoptic", "pascal-voc", "what-v4-changed", "transforms-and-collate",
        "models", "shared-encoder-and-slot-attention", "dias", "dinosaur", "slate", "slotdiffusion",
        "vq-vae-tokenizers", "spot", "hyper-parameters", "checkpoints", "evaluation-protocol", "published-numbers",
        "training-loop-and-seeding", "quirks", "object-recognition-probe", "acceptance-checks",
    ],
    "architecture.md": [
        "flow", "layers", "the-method-contract", "public-contracts", "add-a-method", "add-a-dataset",
        "add-a-protocol", "add-a-table",
    ],
    "experiments.md": ["2026-11-23-cpu-feasibility"],
}


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: link targets and markup dropped, lower case, every character that is
    not a letter, digit, space, hyphen or underscore removed, each space turned into a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # [text](url) → text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Slugs of every heading outside fenced code; repeated headings get -1, -2, … as on GitHub."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    fenced = False
    for line in markdown.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            slug = github_slug(match.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def _target_error(reference: str, name: str, anchor: str | None, docs: dict[str, set[str] | None]) -> list[str]:
    """[] if docs/`name` exists and has `anchor` (when one is given), else the one problem."""
    slugs = docs.get(name)
    if slugs is None:
        return [f"{reference}: docs/{name} does not exist"]
    if anchor is not None and anchor not in slugs:
        return [f"{reference}: no heading of docs/{name} has the anchor #{anchor}"]
    return []


def citation_errors(text: str, docs: dict[str, set[str] | None]) -> list[str]:
    """Problems with the docs citations in `text`; `docs` maps a file name under docs/ to its anchors (None: the
    file does not exist)."""
    return [e for m in CITATION.finditer(text) for e in _target_error(m.group(0), m.group(1), m.group(2), docs)]


def link_errors(text: str, page: str, docs: dict[str, set[str] | None]) -> list[str]:
    """Problems with the relative links of docs/`page`."""
    return [e for m in RELATIVE_LINK.finditer(text)
            for e in _target_error(m.group(0), m.group(1) or page, m.group(2), docs)]


def outside_citations(text: str) -> list[str]:
    return [m.group(0) for m in OUTSIDE_NOTES.finditer(text)]


def repository_files() -> list[Path]:
    files = []
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT)
        parts = rel.parts
        if (path.suffix not in SUFFIXES or not path.is_file() or parts[0] in SKIPPED_TOP
                or any(p.startswith(".") or p == "__pycache__" or p.endswith(".egg-info") for p in parts)
                or (parts[0] == "reports" and rel != Path("reports/README.md"))):
            continue
        files.append(path)
    return files


def docs_anchors() -> dict[str, set[str] | None]:
    found: dict[str, set[str] | None] = {p.name: anchors(p.read_text(encoding="utf-8"))
                                         for p in (ROOT / "docs").glob("*.md")}
    return found


# --- the checker itself: these fail if it stopped finding what it must ------------------------------------


@pytest.mark.parametrize("heading, slug", [
    ("2026-11-23 CPU feasibility", "2026-11-23-cpu-feasibility"),
    ("Shared encoder and Slot Attention", "shared-encoder-and-slot-attention"),
    ("VQ-VAE tokenizers", "vq-vae-tokenizers"),
    ("What v4 changed", "what-v4-changed"),
    ("`mini` table: 9 min 44 s (2 × 800 steps)", "mini-table-9-min-44-s-2--800-steps"),
    ("[Links](https://example.org) keep their text", "links-keep-their-text"),
])
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug


def test_anchors_skip_code_and_number_repeats():
    text = "# Top\n## Same\n```\n## Not a heading\n```\n## Same\n"
    assert anchors(text) == {"top", "same", "same-1"}


def test_checker_rejects_missing_file_and_anchor():
    docs = {"reference.md": {"dias", "quirks"}}
    good = "see " + "docs/" + "reference.md#dias and docs/" + "reference.md#quirks."
    assert citation_errors(good, docs) == []
    bad_anchor = "docs/" + "reference.md#dais"
    bad_file = "docs/" + "nowhere.md#dias"
    errors = citation_errors(f"({bad_anchor}) and ({bad_file})", docs)
    assert len(errors) == 2
    assert "#dais" in errors[0] and "nowhere.md does not exist" in errors[1]


def test_link_checker_resolves_within_docs():
    docs = {"reference.md": {"quirks"}, "architecture.md": {"layers"}}
    assert link_errors("[q](#quirks), [l](architecture.md#layers), [x](https://a.b/c)", "reference.md", docs) == []
    errors = link_errors("[q](#quirk), [l](architecture.md#layer)", "reference.md", docs)
    assert [e.split(":")[0] for e in errors] == ["](#quirk)", "](architecture.md#layer)"]


def test_checker_finds_outside_notes():
    # Split so that this file does not cite them itself.
    cited = ["SPEC" + " §", "DESIGN" + ".md", "../" + "shared", "CPU-" + "FEASIBILITY", "RECOGNITION" + ".md"]
    text = f"as {cited[0]}3.2 says; {cited[1]}; {cited[2]}/x; {cited[3]}.md; {cited[4]}"
    assert outside_citations(text) == cited
    assert outside_citations("SPEC_CASES, DATASET_SPECS, docs/experiments.md#2026-11-23-cpu-feasibility") == []


# --- the repository ---------------------------------------------------------------------------------------------


def test_fixed_anchors_exist():
    docs = docs_anchors()
    missing = [f"docs/{name}#{a}" for name, wanted in FIXED_ANCHORS.items() for a in wanted
               if a not in (docs.get(name) or set())]
    assert not missing, "anchors the code cites are gone:\n" + "\n".join(missing)


def test_every_docs_citation_resolves():
    docs = docs_anchors()
    files = repository_files()
    assert any(p.name == "README.md" for p in files) and any(p.suffix == ".py" for p in files)
    errors = [f"{p.relative_to(ROOT)}: {e}" for p in files for e in citation_errors(p.read_text(encoding="utf-8"), docs)]
    assert not errors, "\n".join(errors)


def test_links_inside_docs_resolve():
    docs = docs_anchors()
    errors = [f"docs/{page}: {e}" for page in docs
              for e in link_errors((ROOT / "docs" / page).read_text(encoding="utf-8"), page, docs)]
    assert not errors, "\n".join(errors)


def test_nothing_cites_notes_outside_the_repository():
    found = [f"{p.relative_to(ROOT)}: {hit}" for p in repository_files()
             for hit in outside_citations(p.read_text(encoding="utf-8"))]
    assert not found, "cite docs/ instead:\n" + "\n".join(found)
