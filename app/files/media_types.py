"""What a file is, decided by its bytes; the name's extension only chooses between text
formats, whose bytes look alike.

Binary formats are recognised by their signatures (`filetype`); anything else must be UTF-8
text without NUL bytes. A `.pdf` that is really text is text; an executable renamed `.txt` is
refused.
"""

import json
from collections.abc import Callable
from pathlib import PurePosixPath

import filetype

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
TEXT = "text/plain"
MARKDOWN = "text/markdown"
CSV = "text/csv"
HTML = "text/html"
JSON = "application/json"

BINARY_TYPES = {PDF, DOCX, "image/png", "image/jpeg", "image/gif", "image/webp"}
TEXT_TYPES = {TEXT, MARKDOWN, CSV, HTML, JSON}
ALLOWED = BINARY_TYPES | TEXT_TYPES
# What knowledge ingestion can read text from (app/knowledge/parsing.py).
READABLE = TEXT_TYPES | {PDF, DOCX}
EXTENSIONS = {
    PDF: ".pdf",
    DOCX: ".docx",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    TEXT: ".txt",
    MARKDOWN: ".md",
    CSV: ".csv",
    HTML: ".html",
    JSON: ".json",
}
_TEXT_BY_EXTENSION = {
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".csv": CSV,
    ".html": HTML,
    ".htm": HTML,
    ".json": JSON,
}


class Unsupported(Exception):
    pass


def detect(head: bytes, name: str, read_all: Callable[[], bytes]) -> str:
    """The media type of a file from its first bytes (`head`) and, for text, all of them
    (`read_all` is called only then)."""
    kind: str | None = filetype.guess_mime(head)
    if kind is not None:
        if kind not in BINARY_TYPES:
            raise Unsupported(f"Files of type {kind} are not accepted.")
        return kind
    data = read_all()
    if b"\x00" in data:
        raise Unsupported("This binary format is not accepted.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unsupported("Text files must be UTF-8.") from exc
    claimed = _TEXT_BY_EXTENSION.get(PurePosixPath(name.lower()).suffix, TEXT)
    if claimed == JSON and not _is_json(text):
        return TEXT
    if claimed == TEXT and _looks_like_html(text):
        return HTML
    return claimed


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _looks_like_html(text: str) -> bool:
    start = text.lstrip()[:200].lower()
    return start.startswith(("<!doctype html", "<html"))
