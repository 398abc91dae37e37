"""docs/design.md is the project's own design document: it lists every
invariant the README numbers, and every file and test it cites as enforcing
or testing one exists (so the document cannot drift from the code
unnoticed). README and docs link to nothing outside the repository."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DESIGN = (ROOT / "docs/design.md").read_text()


def readme_invariants() -> dict[int, str]:
    section = (ROOT / "README.md").read_text().split("## Invariants", 1)[1]
    return {int(n): name for n, name in re.findall(r"^(\d+)\. \*\*(.+?)\*\*", section, flags=re.MULTILINE)}


def design_rows() -> dict[int, str]:
    return {int(n): row for n, row in re.findall(r"^\| (\d+) \| (.+)$", DESIGN, flags=re.MULTILINE)}


def test_the_readme_points_to_the_design_document():
    assert "docs/design.md" in (ROOT / "README.md").read_text()


def test_every_readme_invariant_has_its_row_with_enforcement_and_tests():
    invariants, rows = readme_invariants(), design_rows()
    assert len(invariants) == 11 and set(rows) == set(invariants)
    for number, name in invariants.items():
        cells = [cell.strip() for cell in rows[number].split(" | ")]
        assert cells[0].startswith(f"**{name.rstrip('.')}"), number
        assert "tests/" in cells[-1], number


def test_every_file_and_test_the_design_cites_exists():
    cited_files = set(re.findall(r"`((?:notes|integrations|audit|psyfi_review|operations|tests)/[\w/.]+\.py)`", DESIGN))
    assert len(cited_files) > 20
    for path in cited_files:
        assert (ROOT / path).exists(), path
    for row in design_rows().values():
        for path, names in re.findall(r"`(tests/[\w/]+\.py)` \(([^)]*)\)", row):
            source = (ROOT / path).read_text()
            for name in re.findall(r"`(test_\w+)`", names):
                assert f"def {name}(" in source, (path, name)


def test_readme_and_docs_link_nothing_outside_the_repository():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        assert not re.search(r"\]\((?:https?:|/)", text), path
        for outside in ("/work/", "DESIGN.md", "MAPPING.md", "STYLE.md"):
            assert outside not in text, (path, outside)
