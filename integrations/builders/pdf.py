"""The note for manual filing (integrations.manual_filing): its sections in the
template's order, each as the EHR text shows it (section_body, the same
rendering every protocol sends), and the same as a PDF.

Pure like the other builders: everything comes in as arguments, `now`
included, and the same input gives the same bytes. fpdf2 writes the PDF: pure
Python, its dependencies (Pillow, fontTools, defusedxml) ship as wheels, so it
needs no system library (WeasyPrint needs Pango, reportlab's text layout is
more than a list of headed paragraphs needs). Its built-in fonts cover
Latin-1 only, so DejaVu Sans (Bitstream Vera licence, fonts/LICENSE) is
embedded, subset to the glyphs used: names and clinical text in any European
script come out as written.
"""

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from integrations.builders import NoteInput, attestation_line, section_body

FONTS = Path(__file__).resolve().parent / "fonts"
# C0 controls other than tab and newline (and DEL) cannot be drawn; the
# signed text keeps them, the PDF shows a space.
_UNDRAWABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class FilingSection:
    key: str
    title: str
    body: str


def filing_sections(note: NoteInput, mapping: dict) -> tuple[FilingSection, ...]:
    """What a person copies into the EHR, in the template's order: each
    section under the title the mapping gives it (as render_text does), then
    the amendment line if any, then the AI attestation line."""
    titles = {k: v.get("title") for k, v in mapping.get("fhir", {}).get("sections", {}).items()}
    sections = [
        FilingSection(key=section.key, title=titles.get(section.key) or section.label, body=section_body(section))
        for section in note.sections
    ]
    if note.amends_version_id:
        reason = f"Amendment of version {note.amends_version_id}: {note.amendment_reason}".strip()
        sections.append(FilingSection(key="amendment", title="Amendment", body=reason))
    sections.append(FilingSection(key="attestation", title="Attestation", body=attestation_line(note)))
    return tuple(sections)


def filing_header(note: NoteInput) -> tuple[tuple[str, str], ...]:
    """Who and what the note is, for finding the right chart (invariant 5)."""
    return (
        ("Client", f"{note.patient_given_name} {note.patient_family_name}".strip()),
        ("Date of birth", note.patient_birth_date),
        ("EHR patient id", note.patient_ehr_id or "—"),
        (
            "Session",
            f"{note.session_start.strftime('%Y-%m-%d %H:%M')}–{note.session_end.strftime('%H:%M')} UTC",
        ),
        ("Signed", f"{note.clinician_name}, {note.signed_at.strftime('%Y-%m-%d %H:%M UTC')}"),
        ("Note id", note.identifier_value),
    )


def filing_pdf_build(note: NoteInput, mapping: dict, *, now: datetime) -> bytes:
    """The note as a PDF: a header naming the client, then every section of
    filing_sections under its title. Returns the PDF's bytes."""
    pdf = FPDF(format="Letter")
    pdf.set_creation_date(now)
    pdf.set_producer("psyfi-review")
    pdf.set_title(f"Clinical note {note.identifier_value}")
    pdf.set_author(note.clinician_name)
    pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.alias_nb_pages()
    footer = f"{note.identifier_value}{' · SYNTHETIC CLIENT' if note.synthetic else ''}"

    def draw_footer() -> None:
        pdf.set_y(-14)
        pdf.set_font("DejaVu", "", 8)
        pdf.cell(0, 6, f"{footer} · page {pdf.page_no()}/{{nb}}", align="C")

    pdf.footer = draw_footer  # fpdf2 calls footer() at each page end
    pdf.add_page()
    pdf.set_font("DejaVu", "B", 15)
    pdf.multi_cell(0, 8, "Clinical note for filing in the EHR", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)
    for label, value in filing_header(note):
        pdf.set_font("DejaVu", "B", 10)
        pdf.cell(36, 6, label)
        pdf.set_font("DejaVu", "", 10)
        pdf.multi_cell(0, 6, _drawable(value), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    for section in filing_sections(note, mapping):
        pdf.ln(4)
        pdf.set_font("DejaVu", "B", 12)
        pdf.multi_cell(0, 7, _drawable(section.title), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("DejaVu", "", 10.5)
        pdf.multi_cell(0, 5.5, _drawable(section.body), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())


def _drawable(text: str) -> str:
    return _UNDRAWABLE.sub(" ", text)
