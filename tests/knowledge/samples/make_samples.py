"""Writes the binary samples (security.pdf, corrupt.pdf, remote-work.docx) next to this file;
the text samples are written by hand. Run it again after changing a sample's content:

    .venv/bin/python tests/knowledge/samples/make_samples.py

The output is the same on every run (fixed dates, no random bytes), so regenerating leaves git
clean unless the content changed.

The PDF is written by hand because pypdf cannot lay out text: a minimal PDF 1.4 with one
content stream per page drawing lines in Helvetica, the standard font every reader has.
"""

import io
import zipfile
from datetime import datetime
from pathlib import Path
from textwrap import wrap

import docx

HERE = Path(__file__).parent
FIXED_DATE = datetime(2024, 3, 1, 9, 0, 0)

SECURITY_PAGES = [
    (
        "1. Reporting incidents",
        "Report every security incident to security@northwind.example within 24 hours of "
        "noticing it, even when you are not sure it is one. Forward suspected phishing emails "
        "to phishing@northwind.example instead of deleting them. The security team answers "
        "reports around the clock.",
    ),
    (
        "2. Passwords and accounts",
        "Passwords must be at least 14 characters long. Store them in the company password "
        "manager, Bitwarden, and never reuse a Northwind password anywhere else. "
        "Multi-factor authentication is required for email, the VPN and GitHub.",
    ),
    (
        "3. Devices",
        "Every laptop uses full-disk encryption. Screens lock automatically after 5 minutes "
        "of inactivity. A lost or stolen laptop must be reported to the IT helpdesk within "
        "2 hours, so that it can be wiped remotely.",
    ),
]


def pdf_text(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return f"({escaped})".encode("latin-1")


def page_content(title: str, body: str, number: int, pages: int) -> bytes:
    lines = [b"BT /F1 16 Tf 72 720 Td " + pdf_text(title) + b" Tj ET"]
    lines.append(b"BT /F1 11 Tf 72 690 Td 15 TL")
    for line in wrap(body, 85):
        lines.append(pdf_text(line) + b" Tj T*")
    lines.append(b"ET")
    footer = f"Northwind Security Policy - page {number} of {pages}"
    lines.append(b"BT /F1 9 Tf 72 40 Td " + pdf_text(footer) + b" Tj ET")
    return b"\n".join(lines)


def security_pdf() -> bytes:
    """Objects: 1 catalog, 2 page tree, 3 font, then a page and its content per page."""
    count = len(SECURITY_PAGES)
    kids = " ".join(f"{4 + 2 * n} 0 R" for n in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for n, (title, body) in enumerate(SECURITY_PAGES):
        content = page_content(title, body, n + 1, count)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> " + f"/Contents {5 + 2 * n} 0 R >>".encode()
        )
        objects.append(
            f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream"
        )
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, definition in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + definition + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def corrupt_pdf(real: bytes) -> bytes:
    """A real PDF's header and first object, then junk where the rest should be: what a
    download cut short and padded by a broken proxy looks like."""
    cut = real.index(b"endobj") + len(b"endobj\n")
    junk = bytes((n * 7919 + 13) % 256 for n in range(2048))
    return real[:cut] + junk


def remote_work_docx() -> bytes:
    document = docx.Document()
    document.core_properties.created = FIXED_DATE
    document.core_properties.modified = FIXED_DATE
    document.core_properties.title = "Remote Work Policy"
    document.add_paragraph("Remote Work Policy", style="Title")
    document.add_paragraph(
        "This policy applies to all Northwind employees who have completed their probation period."
    )
    document.add_heading("Eligibility", level=1)
    document.add_paragraph("Employees may work remotely up to 3 days per week.")
    document.add_paragraph(
        "Tuesdays and Thursdays are office days for all teams.", style="List Bullet"
    )
    document.add_paragraph("Team leads agree remote days one week ahead.", style="List Bullet")
    document.add_heading("Equipment", level=1)
    document.add_heading("Internet allowance", level=2)
    document.add_paragraph("Northwind pays remote workers a monthly internet allowance of 25 EUR.")
    document.add_heading("Working from abroad", level=2)
    document.add_paragraph(
        "Working from another country is allowed for a limited number of days per year:"
    )
    table = document.add_table(rows=1, cols=3)
    for cell, text in zip(
        table.rows[0].cells, ["Region", "Days per year", "Approval"], strict=True
    ):
        cell.text = text
    for row in [
        ("EU and EEA", "20", "Manager"),
        ("United Kingdom", "10", "HR"),
        ("Rest of the world", "0", "Not allowed"),
    ]:
        for cell, text in zip(table.add_row().cells, row, strict=True):
            cell.text = text
    document.add_heading("Contact", level=1)
    document.add_paragraph("Questions about remote work go to people@northwind.example.")
    saved = io.BytesIO()
    document.save(saved)
    return with_fixed_timestamps(saved.getvalue())


def with_fixed_timestamps(archive: bytes) -> bytes:
    """The same zip with every entry dated FIXED_DATE (python-docx stamps the current time)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(archive)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for entry in source.infolist():
            fixed = zipfile.ZipInfo(entry.filename, date_time=FIXED_DATE.timetuple()[:6])
            fixed.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(fixed, source.read(entry))
    return out.getvalue()


def main() -> None:
    security = security_pdf()
    (HERE / "security.pdf").write_bytes(security)
    (HERE / "corrupt.pdf").write_bytes(corrupt_pdf(security))
    (HERE / "remote-work.docx").write_bytes(remote_work_docx())


if __name__ == "__main__":
    main()
