"""Documents turned into sections of plain text, the first stage of knowledge ingestion.

A section is the unit a citation can name: the heading path it falls under and, for PDF, its
page. Chunks are cut inside sections only (`chunking.py`), so every chunk inherits an exact
heading and page. Each section also knows where its text starts in the document's full text
(`full_text`), so a citation can point at the exact characters a chunk came from.

Headings stay in the text (a Markdown section starts with its `## ...` line, an HTML or Word
section with its heading's words): a chunk's own words then say what it is about, which helps
both the embedding and the reader of a citation.
"""

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import docx
import pypdf
from bs4 import BeautifulSoup, CData, Tag
from bs4.element import NavigableString, PageElement
from docx.table import Table

from app.files.media_types import CSV, DOCX, HTML, JSON, MARKDOWN, PDF, TEXT

SECTION_SEPARATOR = "\n\n"
CSV_ROWS_PER_SECTION = 50


@dataclass(frozen=True)
class Section:
    text: str
    heading: str | None  # the heading path it falls under, "Leave > Holidays"; None if none
    page: int | None  # 1-based, PDF only
    start: int  # where `text` starts in `full_text` of the document's sections


class ParseError(Exception):
    """The content cannot be read; the message is meant for the user who uploaded it."""


def parse(data: bytes, media_type: str) -> list[Section]:
    """The document's non-empty sections, in reading order."""
    kind = media_type.split(";", 1)[0].strip().lower()
    if kind == PDF:
        return _place(_pdf_pages(data))
    if kind == DOCX:
        return _place(_docx_sections(data))
    if kind not in _TEXT_PARSERS:
        raise ParseError(f"Files of type {media_type} cannot be read as text.")
    return _place(_TEXT_PARSERS[kind](_decode(data)))


def full_text(sections: list[Section]) -> str:
    """The text every `Section.start` (and every chunk offset) is counted in."""
    return SECTION_SEPARATOR.join(section.text for section in sections)


@dataclass(frozen=True)
class _Draft:
    text: str
    heading: str | None = None
    page: int | None = None


def _place(drafts: Iterator[_Draft]) -> list[Section]:
    sections: list[Section] = []
    offset = 0
    for draft in drafts:
        text = draft.text.strip()
        if not text:
            continue
        sections.append(Section(text, draft.heading, draft.page, offset))
        offset += len(text) + len(SECTION_SEPARATOR)
    return sections


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError("The file is not UTF-8 text.") from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")


class _Outline:
    """Collects lines into sections, starting a new one at each heading. Markdown gives it
    its source lines as they are; HTML and Word give it blocks (`block`, `heading_block`),
    which it separates by blank lines except inside a list or a table, so the chunker can
    keep paragraphs, lists and tables whole where they fit.

    A heading directly followed by a deeper one ("# Handbook" then "## Leave") does not make a
    section of its own: it is carried into the next, whose text then starts with both lines, so
    the document's title is not left as a one-line chunk that answers nothing."""

    def __init__(self) -> None:
        self._path: list[tuple[int, str]] = []
        self._lines: list[str] = []
        self._pending_level: int | None = None
        self._has_body = False
        self._last_group: str | None = None
        self._has_blocks = False
        self.drafts: list[_Draft] = []

    def heading(self, level: int, title: str, line: str) -> None:
        if self._has_body or (self._pending_level is not None and level <= self._pending_level):
            self._flush()
        while self._path and self._path[-1][0] >= level:
            self._path.pop()
        self._path.append((level, title))
        self._lines.append(line)
        self._pending_level = level

    def body(self, line: str) -> None:
        self._lines.append(line)
        self._has_body = self._has_body or bool(line.strip())

    def block(self, text: str, group: str | None = None) -> None:
        """`group` names the list or table a block belongs to; None for a paragraph."""
        if text:
            self.body(self._gap(group) + text)

    def heading_block(self, level: int, title: str) -> None:
        if title:
            self.heading(level, title, self._gap(None) + title)

    def _gap(self, group: str | None) -> str:
        first, self._has_blocks = not self._has_blocks, True
        together = group is not None and group == self._last_group
        self._last_group = group
        return "" if first or together else "\n"

    def finish(self) -> Iterator[_Draft]:
        self._flush()
        return iter(self.drafts)

    def _flush(self) -> None:
        titles = [title for _, title in self._path if title]
        heading = " > ".join(titles) if titles else None
        self.drafts.append(_Draft("\n".join(self._lines), heading))
        self._lines, self._pending_level, self._has_body = [], None, False


def _plain_text(text: str) -> Iterator[_Draft]:
    yield _Draft(text)


_ATX_HEADING = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
_SETEXT_UNDERLINE = re.compile(r" {0,3}(=+|-+)[ \t]*")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_NOT_PARAGRAPH = re.compile(r" {0,3}([-*+>|]|\d+[.)])(\s|$)")
_MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def _markdown(text: str) -> Iterator[_Draft]:
    """ATX headings (`## Leave`) and single-line setext headings (`Leave` over `-----`) start
    sections; a `#` inside a fenced code block is code, not a heading."""
    outline = _Outline()
    lines = text.split("\n")
    fence: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        fence_match = _FENCE.match(line)
        if fence is not None:
            if fence_match and fence_match.group(1).startswith(fence):
                fence = None
        elif fence_match:
            fence = fence_match.group(1)
        elif atx := _ATX_HEADING.fullmatch(line):
            outline.heading(len(atx.group(1)), _markdown_title(atx.group(2) or ""), line)
            index += 1
            continue
        elif _is_setext_heading(lines, index):
            level = 1 if lines[index + 1].strip().startswith("=") else 2
            outline.heading(level, _markdown_title(line), line + "\n" + lines[index + 1])
            index += 2
            continue
        outline.body(line)
        index += 1
    return outline.finish()


def _is_setext_heading(lines: list[str], index: int) -> bool:
    """Only a one-line paragraph counts: a `---` under a list, a quote or a longer paragraph is
    far more often a rule than a heading, and YAML front matter must not become one."""
    line = lines[index]
    return (
        index + 1 < len(lines)
        and bool(line.strip())
        and (index == 0 or not lines[index - 1].strip())
        and not _NOT_PARAGRAPH.match(line)
        and _SETEXT_UNDERLINE.fullmatch(lines[index + 1]) is not None
    )


def _markdown_title(title: str) -> str:
    return _MARKDOWN_LINK.sub(r"\1", title).replace("`", "").replace("**", "").strip()


_DROPPED_TAGS = ["script", "style", "nav", "head", "noscript", "template"]
_HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "div",
    "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "html",
    "li", "main", "ol", "p", "section", "summary", "table", "tbody", "td", "tfoot", "th",
    "thead", "ul",
}  # fmt: skip
_BLOCK_GROUPS = {"ul": "list", "ol": "list", "dl": "list", "table": "table"}
_SPACES = re.compile(r"\s+")


class _HtmlBlocks:
    """Feeds an outline with an HTML body's text, a block per paragraph, list item or table
    row (cells separated by " | "), whitespace collapsed as a browser would."""

    def __init__(self, outline: _Outline) -> None:
        self._outline = outline
        self._inline: list[str] = []
        # The list or table each enclosing block is part of; a <p> in an <li> is in the list.
        self._groups: list[str | None] = [None]

    def walk(self, root: Tag) -> None:
        # An explicit stack, not recursion: pages can nest elements thousands deep. None marks
        # the end of a block element.
        stack: list[PageElement | None] = list(reversed(root.contents))
        while stack:
            node = stack.pop()
            if node is None:
                self.end_block()
                self._groups.pop()
            elif isinstance(node, NavigableString):
                # Comments, doctypes and processing instructions are strings too, never text.
                if type(node) in (NavigableString, CData):
                    self._inline.append(_SPACES.sub(" ", node))
            elif isinstance(node, Tag) and not self._leaf(node):
                if node.name in _BLOCK_TAGS:
                    self.end_block()
                    self._groups.append(_BLOCK_GROUPS.get(node.name, self._groups[-1]))
                    stack.append(None)
                stack.extend(reversed(node.contents))

    def _leaf(self, tag: Tag) -> bool:
        """Handles the elements whose text is taken whole; False for the others."""
        name = tag.name
        if name in _HEADING_TAGS:
            self.end_block()
            self._outline.heading_block(_HEADING_TAGS[name], _collapse(tag.get_text(" ")))
        elif name == "tr":
            self.end_block()
            cells = tag.find_all(["td", "th"], recursive=False)
            texts = [_collapse(cell.get_text(" ")) for cell in cells]
            self._outline.block(" | ".join(text for text in texts if text), "table")
        elif name == "pre":
            self.end_block()
            code = "\n".join(line.rstrip() for line in tag.get_text().strip("\n").split("\n"))
            self._outline.block(code, self._groups[-1])
        elif name == "br":
            self._inline.append("\n")
        else:
            return False
        return True

    def end_block(self) -> None:
        # <br> is the only line break inside a block; source newlines are plain whitespace.
        lines = (_collapse(part) for part in "".join(self._inline).split("\n"))
        self._inline = []
        self._outline.block("\n".join(line for line in lines if line), self._groups[-1])


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _html(text: str) -> Iterator[_Draft]:
    soup = BeautifulSoup(text, "lxml")
    for tag in soup(_DROPPED_TAGS):
        tag.decompose()
    outline = _Outline()
    blocks = _HtmlBlocks(outline)
    blocks.walk(soup)
    blocks.end_block()
    return outline.finish()


def _csv(text: str) -> Iterator[_Draft]:
    """Rows as "header: value; ..." lines, so each line states what its numbers mean even when
    a chunk holds rows far below the header."""
    try:
        reader = csv.reader(io.StringIO(text), _csv_dialect(text))
        rows = [row for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as exc:
        raise ParseError(f"The CSV file cannot be read: {exc}.") from exc
    header = rows[0] if rows and _has_header(rows) else None
    lines = [_csv_line(row, header) for row in (rows[1:] if header else rows)]
    for first in range(0, len(lines), CSV_ROWS_PER_SECTION):
        yield _Draft("\n".join(lines[first : first + CSV_ROWS_PER_SECTION]))


def _csv_dialect(text: str) -> type[csv.Dialect]:
    # Limited to the usual separators: left free, the sniffer can pick a letter or a space.
    try:
        return csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        return csv.excel


def _has_header(rows: list[list[str]]) -> bool:
    """A first row of distinct, non-empty, non-numeric names is a header unless the data says
    otherwise (in the spirit of `csv.Sniffer.has_header`, which re-sniffs with no delimiter
    limit): a column whose values all share one length the first row shares too votes against
    it, a numeric column or one of fixed length the first row breaks votes for it."""
    first = [cell.strip() for cell in rows[0]]
    if not all(first) or len(set(first)) < len(first) or any(map(_is_number, first)):
        return False
    votes = 0
    for column, name in enumerate(first):
        values = [row[column].strip() for row in rows[1:21] if column < len(row)]
        values = [value for value in values if value]
        if not values:
            continue
        if all(map(_is_number, values)):
            votes += 1
        elif len({len(value) for value in values}) == 1:
            votes += 1 if len(values[0]) != len(name) else -1
    return votes >= 0


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def _csv_line(row: list[str], header: list[str] | None) -> str:
    values = [value.strip() for value in row]
    if header is None:
        return "; ".join(value for value in values if value)
    names = header + [f"column {n}" for n in range(len(header) + 1, len(values) + 1)]
    return "; ".join(f"{names[i].strip()}: {value}" for i, value in enumerate(values) if value)


def _json(text: str) -> Iterator[_Draft]:
    """Every leaf as a "path.to.key: value" line. A top-level key holding an object or a list
    is a section named after it; top-level scalars next to each other share one section, so
    they do not become one-line chunks."""
    try:
        document = json.loads(text)
        drafts = list(_json_sections(document))
    except ValueError as exc:
        raise ParseError(f"The JSON file is not valid JSON: {exc}.") from exc
    except RecursionError as exc:
        raise ParseError("The JSON file is nested too deeply to be read.") from exc
    return iter(drafts)


def _json_sections(document: object) -> Iterator[_Draft]:
    if not isinstance(document, dict):
        yield _Draft("\n".join(_json_leaves(document, "")))
        return
    scalars: list[str] = []
    for key, value in document.items():
        if isinstance(value, dict | list) and value:
            yield _Draft("\n".join(scalars))
            scalars = []
            yield _Draft("\n".join(_json_leaves(value, key)), heading=key)
        else:
            scalars.extend(_json_leaves(value, key))
    yield _Draft("\n".join(scalars))


def _json_leaves(value: object, path: str) -> Iterator[str]:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _json_leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from _json_leaves(item, f"{path}[{index}]")
    else:
        rendered = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        yield f"{path}: {rendered}" if path else rendered


def _pdf_pages(data: bytes) -> Iterator[_Draft]:
    """One section per page with text. A PDF with no text at all is refused rather than
    indexed as nothing: it is almost always a scan, and the user should know."""
    # Damaged PDFs fail in pypdf with nearly any exception type (KeyError, ValueError,
    # zlib.error, RecursionError...), during opening or later while a page is read, so
    # everything is caught and reported as the file's fault.
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and reader.decrypt("") == pypdf.PasswordType.NOT_DECRYPTED:
            raise ParseError("The PDF is password-protected; upload it without a password.")
        texts = [page.extract_text() for page in reader.pages]
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError("The PDF is damaged or cannot be read.") from exc
    if not any(text.strip() for text in texts):
        raise ParseError("The PDF has no text to extract (it may be scanned images).")
    for number, text in enumerate(texts, start=1):
        yield _Draft(text, page=number)


_WORD_HEADING = re.compile(r"Heading ([1-9])")


def _docx_sections(data: bytes) -> Iterator[_Draft]:
    """Paragraphs and tables in document order; "Title" and "Heading N" paragraphs start
    sections (Title above Heading 1), list paragraphs are kept together like lines."""
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:
        # A bad zip, a zip that is not a Word document, broken XML: all the file's fault.
        raise ParseError("The Word document is damaged or cannot be read.") from exc
    outline = _Outline()
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            outline.block(_docx_table(block), "table")
            continue
        style = (block.style.name if block.style is not None else None) or ""
        level = _docx_heading_level(style)
        if level is not None:
            outline.heading_block(level, _collapse(block.text))
        else:
            outline.block(_collapse(block.text), "list" if style.startswith("List") else None)
    return outline.finish()


def _docx_heading_level(style: str) -> int | None:
    if style == "Title":
        return 0
    match = _WORD_HEADING.fullmatch(style)
    return int(match.group(1)) if match else None


def _docx_table(table: Table) -> str:
    lines = []
    for row in table.rows:
        # A cell merged across columns comes once per column it spans, as the same object.
        # (`row.cells` builds new objects on each call, so it is read once.)
        grid = row.cells
        cells = [cell for i, cell in enumerate(grid) if i == 0 or cell is not grid[i - 1]]
        texts = [_collapse(cell.text) for cell in cells]
        if any(texts):
            lines.append(" | ".join(text for text in texts if text))
    return "\n".join(lines)


_TEXT_PARSERS = {TEXT: _plain_text, MARKDOWN: _markdown, HTML: _html, CSV: _csv, JSON: _json}
