"""Sections cut into overlapping chunks small enough to embed, each an exact slice of the
document's full text (`parsing.full_text`), so a citation can quote and point at it.

Chunks never cross sections, so each has exactly one heading path and page. Inside a section,
whole paragraphs are packed up to the token budget; a paragraph too long for one chunk is cut
at a line break (a long list or table), else after a sentence, else at a token window.
Consecutive chunks of a section share about `overlap_tokens` tokens, so text cut at a boundary
keeps some of its context on both sides.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

from app.knowledge.parsing import SECTION_SEPARATOR, Section

TOKEN = re.compile(r"\w+|[^\w\s]")
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")

# Kinds of gap before a token, the best places to cut ranked highest.
_PARAGRAPH_BREAK, _LINE_BREAK, _SENTENCE_END, _SPACE = 3, 2, 1, 0
_SENTENCE_ENDS = {".", "!", "?"}


@dataclass(frozen=True)
class Chunk:
    content: str
    index: int  # 0-based, in document order
    heading: str | None
    page: int | None
    start: int  # full_text(sections)[start:end] == content
    end: int


def count_tokens(text: str) -> int:
    """Words and punctuation marks: an approximation of subword tokenizers (the WordPiece of
    all-MiniLM-L6-v2, OpenAI's BPE), within about 20-30% for English prose; rare words,
    numbers and non-English text make the real count higher. Good enough to size chunks well
    under a model's limit (all-MiniLM-L6-v2 truncates at 256 word pieces) without shipping or
    loading either tokenizer."""
    return sum(1 for _ in TOKEN.finditer(text))


def chunk(sections: list[Section], max_tokens: int = 200, overlap_tokens: int = 40) -> list[Chunk]:
    """The chunks of the sections, in document order. Offsets count in
    `full_text(sections)` of exactly these sections (not `Section.start`), so they stay right
    for any list of sections given."""
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError("max_tokens must be greater than overlap_tokens, which must be >= 0.")
    chunks: list[Chunk] = []
    offset = 0
    for section in sections:
        for start, end in _spans(section.text, max_tokens, overlap_tokens):
            chunks.append(
                Chunk(
                    content=section.text[start:end],
                    index=len(chunks),
                    heading=section.heading,
                    page=section.page,
                    start=offset + start,
                    end=offset + end,
                )
            )
        offset += len(section.text) + len(SECTION_SEPARATOR)
    return chunks


def _spans(text: str, max_tokens: int, overlap_tokens: int) -> list[tuple[int, int]]:
    """Character spans of the section's chunks. Each starts and ends on a token, so a chunk
    never begins or ends with whitespace and holds exactly the tokens counted for it."""
    tokens = [match.span() for match in TOKEN.finditer(text)]
    gaps = _gaps(text, tokens)
    spans: list[tuple[int, int]] = []
    first_new = 0  # the first token no chunk holds yet
    previous_first_new = 0
    while first_new < len(tokens):
        first, end = _next_chunk(gaps, first_new, previous_first_new, max_tokens, overlap_tokens)
        spans.append((tokens[first][0], tokens[end - 1][1]))
        previous_first_new, first_new = first_new, end
    return spans


def _gaps(text: str, tokens: Sequence[tuple[int, int]]) -> list[int]:
    """The kind of gap before each token, and after the last (`gaps[len(tokens)]`): the end of
    the section is as good a place to stop as the end of a paragraph."""
    gaps = [_PARAGRAPH_BREAK]
    for (previous_start, previous_end), (start, _) in pairwise(tokens):
        gap = text[previous_end:start]
        if _BLANK_LINE.search(gap):
            gaps.append(_PARAGRAPH_BREAK)
        elif "\n" in gap:
            gaps.append(_LINE_BREAK)
        elif gap and text[previous_start:previous_end] in _SENTENCE_ENDS:
            gaps.append(_SENTENCE_END)
        else:
            gaps.append(_SPACE)
    gaps.append(_PARAGRAPH_BREAK)
    return gaps


def _next_chunk(
    gaps: list[int], first_new: int, floor: int, max_tokens: int, overlap_tokens: int
) -> tuple[int, int]:
    """The next chunk's first token and end (exclusive).

    It backs up `overlap_tokens` into the previous chunk, but only over tokens that chunk
    added (`floor`): no token is in more than two chunks. It ends after the last whole
    paragraph that fits. When none fits beside the overlap but one fits alone, the overlap
    shrinks instead: a whole paragraph reads better than a repeated tail. A paragraph longer
    than a chunk is cut at its last line break that fits (a long list or table), else at its
    last sentence end, else after `max_tokens` tokens.
    """
    first = max(first_new - overlap_tokens, floor)
    end = _last_break(gaps, first_new, first + max_tokens, _PARAGRAPH_BREAK)
    if end is not None:
        return first, end
    end = _last_break(gaps, first_new, first_new + max_tokens, _PARAGRAPH_BREAK)
    if end is not None:
        return max(first, end - max_tokens), end
    for kind in (_LINE_BREAK, _SENTENCE_END):
        end = _last_break(gaps, first_new, first + max_tokens, kind)
        if end is not None:
            return first, end
    return first, first + max_tokens


def _last_break(gaps: list[int], after: int, limit: int, kind: int) -> int | None:
    """The last token index in (after, limit] with a gap at least as good as `kind` before it."""
    for index in range(min(limit, len(gaps) - 1), after, -1):
        if gaps[index] >= kind:
            return index
    return None
