"""Parsing: each supported format becomes sections with the right heading path and page, whose
offsets point exactly into the document's full text; unreadable content is refused with a
message for the user."""

import io
import zipfile
from pathlib import Path

import pypdf
import pytest

from app.files.media_types import CSV, DOCX, HTML, JSON, MARKDOWN, PDF, TEXT
from app.knowledge.parsing import ParseError, Section, full_text, parse

SAMPLES = Path(__file__).parent / "samples"
SAMPLE_TYPES = {
    "handbook.md": MARKDOWN,
    "benefits.html": HTML,
    "expenses.csv": CSV,
    "offices.json": JSON,
    "security.pdf": PDF,
    "remote-work.docx": DOCX,
    "notes.txt": TEXT,
}


def parse_sample(name: str) -> list[Section]:
    return parse((SAMPLES / name).read_bytes(), SAMPLE_TYPES[name])


def section_with(sections: list[Section], fact: str) -> Section:
    """The one section stating `fact` (whitespace-insensitive: PDF lines wrap anywhere)."""
    found = [s for s in sections if " ".join(fact.split()) in " ".join(s.text.split())]
    assert len(found) == 1, f"{fact!r} is in {len(found)} sections"
    return found[0]


def pdf_bytes(writer: pypdf.PdfWriter) -> bytes:
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize("name", sorted(SAMPLE_TYPES))
def test_section_offsets_point_exactly_into_the_full_text(name: str) -> None:
    sections = parse_sample(name)
    text = full_text(sections)

    assert sections
    for section in sections:
        assert section.text
        assert section.text == section.text.strip()
        assert text[section.start : section.start + len(section.text)] == section.text


def test_markdown_sections_follow_the_heading_path() -> None:
    sections = parse_sample("handbook.md")

    assert section_with(sections, "25 days").heading == "Northwind Handbook > Leave > Holidays"
    assert (
        section_with(sections, "16 weeks of fully paid parental leave").heading
        == "Northwind Handbook > Leave > Parental leave"
    )
    assert section_with(sections, "doctor's note").heading == (
        "Northwind Handbook > Leave > Sick leave"
    )
    assert section_with(sections, "10:00 to 15:00 CET").heading == (
        "Northwind Handbook > Working hours"
    )
    assert all(section.page is None for section in sections)


def test_markdown_heading_without_body_is_carried_into_the_next_section() -> None:
    holidays = section_with(parse_sample("handbook.md"), "25 days")

    assert holidays.text.startswith("## Leave\n\n### Holidays\n\n")


def test_markdown_hash_in_a_code_block_is_not_a_heading() -> None:
    code = section_with(parse_sample("handbook.md"), "# This line is inside a code block")

    assert code.heading == "Northwind Handbook > Working hours"


def test_markdown_setext_heading_starts_a_section() -> None:
    onboarding = section_with(parse_sample("handbook.md"), "onboarding buddy")

    assert onboarding.heading == "Northwind Handbook > Onboarding"


def test_markdown_rule_under_a_list_is_not_a_heading() -> None:
    sections = parse(b"# Tasks\n\n- first\n---\n\nmore", MARKDOWN)

    assert [section.heading for section in sections] == ["Tasks"]


def test_html_headings_paragraphs_lists_and_tables_become_sections() -> None:
    sections = parse_sample("benefits.html")

    health = section_with(sections, "80% of the health insurance premium")
    assert health.heading == "Northwind Benefits > Health insurance"
    assert section_with(sections, "6% of gross salary").heading == "Northwind Benefits > Pension"
    assert section_with(sections, "1,200 EUR per year").heading == (
        "Northwind Benefits > Development > Learning budget"
    )
    perks = section_with(sections, "30 EUR per month")
    assert perks.heading == "Northwind Benefits > Perks"
    assert "Lunch | Free on office days\nPhone | A new company phone every 3 years" in perks.text


def test_html_whitespace_is_normalised_and_line_breaks_kept() -> None:
    sections = parse_sample("benefits.html")

    assert section_with(sections, "permanent contract").text == (
        "Northwind Benefits\n\nThese benefits apply to every employee with a permanent contract."
    )
    pension = section_with(sections, "6% of gross salary").text
    assert "pension plan.\nContributions start" in pension


def test_html_scripts_styles_navigation_head_and_comments_are_dropped() -> None:
    text = full_text(parse_sample("benefits.html"))

    for hidden in ["trackingSecret", "analytics", "font-family", "Careers", "not for publication"]:
        assert hidden not in text


def test_html_page_without_text_has_no_sections() -> None:
    assert parse(b"<html><head><title>T</title></head><body><script>x()</script>", HTML) == []


def test_csv_rows_name_their_columns() -> None:
    sections = parse_sample("expenses.csv")

    assert [(section.heading, section.page) for section in sections] == [(None, None)]
    lines = sections[0].text.split("\n")
    assert lines[0] == (
        "category: Meal; limit_eur: 50; approval: none; "
        "notes: Per meal, including drinks; receipt required"
    )
    # An empty cell is left out rather than stated as "limit_eur: ".
    assert lines[2] == (
        "category: Train; approval: none; notes: First class is allowed for journeys over 3 hours"
    )


def test_csv_is_cut_into_sections_of_fifty_rows() -> None:
    data = "day,visitors\n" + "".join(f"Day {n},{n * 3}\n" for n in range(1, 121))

    sections = parse(data.encode(), CSV)

    assert [section.text.count("\n") + 1 for section in sections] == [50, 50, 20]
    assert sections[2].text.split("\n")[0] == "day: Day 101; visitors: 303"


def test_csv_without_header_keeps_its_first_row_as_data() -> None:
    sections = parse(b"2024-01-02,Amsterdam,12\n2024-01-03,Lisbon,7\n", CSV)

    assert sections[0].text == "2024-01-02; Amsterdam; 12\n2024-01-03; Lisbon; 7"


def test_csv_with_semicolons_is_read_by_its_delimiter() -> None:
    sections = parse(b"city;desks\nAmsterdam;120\nLisbon;40\n", CSV)

    assert sections[0].text == "city: Amsterdam; desks: 120\ncity: Lisbon; desks: 40"


def test_json_leaves_become_paths_with_a_section_per_top_level_key() -> None:
    sections = parse_sample("offices.json")

    assert [section.heading for section in sections] == [
        None,
        "offices",
        "it_helpdesk",
        "guest_wifi",
        "emergency_contacts",
    ]
    assert sections[0].text == "company: Northwind Traders\nupdated: 2024-03-01"
    lisbon = section_with(sections, "offices.lisbon.address: Rua Augusta 45, 1100-048 Lisbon")
    assert lisbon.heading == "offices"
    assert "offices.amsterdam.desks: 120" in lisbon.text
    assert section_with(sections, "it_helpdesk.phone: +31 20 555 0100").heading == "it_helpdesk"
    assert "emergency_contacts[1].phone: +31 20 555 0111" in sections[4].text


def test_invalid_json_is_refused() -> None:
    with pytest.raises(ParseError, match="not valid JSON"):
        parse(b'{"company": ', JSON)


def test_pdf_has_a_section_per_page() -> None:
    sections = parse_sample("security.pdf")

    assert [section.page for section in sections] == [1, 2, 3]
    assert all(section.heading is None for section in sections)
    assert section_with(sections, "security@northwind.example within 24 hours").page == 1
    assert section_with(sections, "at least 14 characters long").page == 2
    assert section_with(sections, "lock automatically after 5 minutes").page == 3


def test_pdf_pages_without_text_are_skipped() -> None:
    writer = pypdf.PdfWriter(clone_from=SAMPLES / "security.pdf")
    writer.insert_blank_page(612, 792, index=1)

    sections = parse(pdf_bytes(writer), PDF)

    assert [section.page for section in sections] == [1, 3, 4]


def test_pdf_without_any_text_is_refused() -> None:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(612, 792)

    with pytest.raises(ParseError, match="no text"):
        parse(pdf_bytes(writer), PDF)


def test_corrupt_pdf_is_refused() -> None:
    with pytest.raises(ParseError, match="The PDF is damaged"):
        parse((SAMPLES / "corrupt.pdf").read_bytes(), PDF)


def test_password_protected_pdf_is_refused() -> None:
    writer = pypdf.PdfWriter(clone_from=SAMPLES / "security.pdf")
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")

    with pytest.raises(ParseError, match="password-protected"):
        parse(pdf_bytes(writer), PDF)


def test_pdf_restricted_only_by_an_owner_password_is_read() -> None:
    writer = pypdf.PdfWriter(clone_from=SAMPLES / "security.pdf")
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-128")

    assert [section.page for section in parse(pdf_bytes(writer), PDF)] == [1, 2, 3]


def test_docx_headings_start_sections_under_the_title() -> None:
    sections = parse_sample("remote-work.docx")

    assert sections[0].heading == "Remote Work Policy"
    eligibility = section_with(sections, "up to 3 days per week")
    assert eligibility.heading == "Remote Work Policy > Eligibility"
    assert eligibility.text.endswith(
        "Tuesdays and Thursdays are office days for all teams.\n"
        "Team leads agree remote days one week ahead."
    )
    assert section_with(sections, "internet allowance of 25 EUR").heading == (
        "Remote Work Policy > Equipment > Internet allowance"
    )
    assert all(section.page is None for section in sections)


def test_docx_tables_are_read_row_by_row() -> None:
    abroad = section_with(parse_sample("remote-work.docx"), "EU and EEA | 20 | Manager")

    assert abroad.heading == "Remote Work Policy > Equipment > Working from abroad"
    assert "Region | Days per year | Approval\nEU and EEA | 20 | Manager" in abroad.text


@pytest.mark.parametrize("damage", ["truncated", "not a Word zip", "not a zip"])
def test_corrupt_docx_is_refused(damage: str) -> None:
    real = (SAMPLES / "remote-work.docx").read_bytes()
    if damage == "truncated":
        data = real[: len(real) // 2]
    elif damage == "not a Word zip":
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as other:
            other.writestr("notes.txt", "hello")
        data = archive.getvalue()
    else:
        data = b"PK\x03\x04" + b"\x00" * 100

    with pytest.raises(ParseError, match="The Word document is damaged"):
        parse(data, DOCX)


def test_plain_text_is_one_section() -> None:
    sections = parse_sample("notes.txt")

    assert len(sections) == 1
    assert (sections[0].heading, sections[0].page, sections[0].start) == (None, None, 0)
    assert "first Monday of every month at 16:00" in sections[0].text


def test_text_with_a_byte_order_mark_and_windows_line_ends_is_read() -> None:
    sections = parse("\ufeff# Title\r\n\r\nBody".encode(), MARKDOWN)

    assert sections == [Section("# Title\n\nBody", "Title", None, 0)]


def test_text_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(ParseError, match="UTF-8"):
        parse("Café".encode("latin-1"), TEXT)


def test_blank_text_has_no_sections() -> None:
    assert parse(b"  \n\n \n", TEXT) == []


@pytest.mark.parametrize("media_type", ["image/png", "application/zip", "text/x-python"])
def test_unsupported_media_type_is_refused(media_type: str) -> None:
    with pytest.raises(ParseError, match="cannot be read as text"):
        parse(b"data", media_type)
