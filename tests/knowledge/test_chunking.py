"""Chunking: exact slices of the full text, within the token budget, overlapping inside a
section, never across one; paragraphs kept whole where they fit."""

from itertools import pairwise

import pytest

from app.knowledge.chunking import Chunk, chunk, count_tokens
from app.knowledge.parsing import Section, full_text, parse
from tests.knowledge.test_parsing import SAMPLE_TYPES, SAMPLES


def sections_of(*texts: str, heading: str | None = None) -> list[Section]:
    sections: list[Section] = []
    start = 0
    for number, text in enumerate(texts, start=1):
        sections.append(Section(text, heading, number, start))
        start += len(text) + 2
    return sections


def words(first: int, count: int) -> str:
    return " ".join(f"w{n}" for n in range(first, first + count))


def sentence(number: int) -> str:
    """Ten tokens: nine words and a full stop."""
    return f"Sentence {number} " + words(0, 7) + "."


def overlap(previous: Chunk, following: Chunk, text: str) -> int:
    return (
        count_tokens(text[following.start : previous.end]) if following.start < previous.end else 0
    )


def all_sample_sections() -> list[list[Section]]:
    return [parse((SAMPLES / name).read_bytes(), kind) for name, kind in SAMPLE_TYPES.items()]


@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [(200, 40), (30, 8), (12, 0)])
def test_chunks_are_exact_slices_within_budget_and_sections(
    max_tokens: int, overlap_tokens: int
) -> None:
    for sections in all_sample_sections():
        text = full_text(sections)
        chunks = chunk(sections, max_tokens, overlap_tokens)

        assert [c.index for c in chunks] == list(range(len(chunks)))
        for c in chunks:
            assert c.content
            assert c.content == c.content.strip()
            assert text[c.start : c.end] == c.content
            assert count_tokens(c.content) <= max_tokens
            [section] = [
                s for s in sections if s.start <= c.start and c.end <= s.start + len(s.text)
            ]
            assert (c.heading, c.page) == (section.heading, section.page)


def test_chunks_cover_every_token_of_every_section() -> None:
    for sections in all_sample_sections():
        text = full_text(sections)
        chunks = chunk(sections, 25, 5)
        covered: set[int] = set()
        for c in chunks:
            covered.update(range(c.start, c.end))

        for section in sections:
            for position in range(section.start, section.start + len(section.text)):
                assert position in covered or text[position].isspace()


def test_chunks_do_not_cross_sections() -> None:
    sections = sections_of("Holidays: 25 days.", "Parental leave: 16 weeks.", heading="Leave")

    chunks = chunk(sections)

    assert [(c.content, c.page, c.start) for c in chunks] == [
        ("Holidays: 25 days.", 1, 0),
        ("Parental leave: 16 weeks.", 2, 20),
    ]


def test_short_paragraphs_are_packed_whole() -> None:
    paragraphs = [" ".join(sentence(n * 3 + k) for k in range(3)) for n in range(10)]  # 30 each
    text = "\n\n".join(paragraphs)

    chunks = chunk(sections_of(text), max_tokens=100, overlap_tokens=20)

    assert len(chunks) > 3
    for c in chunks:
        assert c.end == len(text) or text[c.end : c.end + 2] == "\n\n"
        assert count_tokens(c.content) <= 100


def test_consecutive_chunks_of_a_long_section_overlap() -> None:
    text = "\n\n".join(" ".join(sentence(n * 3 + k) for k in range(3)) for n in range(10))

    chunks = chunk(sections_of(text), max_tokens=100, overlap_tokens=20)

    for previous, following in pairwise(chunks):
        assert overlap(previous, following, text) == 20
        assert previous.content.endswith(text[following.start : previous.end])


def test_overlap_shrinks_to_keep_a_paragraph_whole() -> None:
    first, second = words(0, 50), words(100, 90)

    chunks = chunk(sections_of(f"{first}\n\n{second}"), max_tokens=100, overlap_tokens=20)

    assert [c.content for c in chunks] == [first, words(40, 10) + "\n\n" + second]


def test_a_huge_paragraph_is_windowed_with_overlap() -> None:
    text = words(0, 1000)

    chunks = chunk(sections_of(text), max_tokens=200, overlap_tokens=40)

    assert [count_tokens(c.content) for c in chunks] == [200] * 6
    assert [c.content.split()[0] for c in chunks] == [f"w{n}" for n in range(0, 801, 160)]
    for previous, following in pairwise(chunks):
        assert overlap(previous, following, text) == 40


def test_a_long_paragraph_is_cut_after_a_sentence() -> None:
    text = " ".join(sentence(n) for n in range(50))  # one line, 500 tokens

    chunks = chunk(sections_of(text), max_tokens=95, overlap_tokens=10)

    assert all(c.content.endswith(".") for c in chunks)
    assert all(count_tokens(c.content) <= 95 for c in chunks)


def test_a_long_list_is_cut_at_line_breaks() -> None:
    text = "\n".join(f"- item {n}: " + words(0, 8) for n in range(40))  # 12 tokens a line

    chunks = chunk(sections_of(text), max_tokens=50, overlap_tokens=10)

    assert len(chunks) > 5
    for c in chunks[:-1]:
        assert text[c.end] == "\n"


def test_chunk_offsets_count_in_the_given_sections_full_text() -> None:
    sections = parse((SAMPLES / "handbook.md").read_bytes(), SAMPLE_TYPES["handbook.md"])[2:]
    text = full_text(sections)

    assert all(text[c.start : c.end] == c.content for c in chunk(sections, 20, 5))


def test_chunking_is_deterministic() -> None:
    sections = parse((SAMPLES / "benefits.html").read_bytes(), SAMPLE_TYPES["benefits.html"])

    assert chunk(sections, 20, 5) == chunk(sections, 20, 5)


def test_no_sections_no_chunks() -> None:
    assert chunk([]) == []
    assert chunk(sections_of("   \n\n  ")) == []


@pytest.mark.parametrize(("max_tokens", "overlap_tokens"), [(40, 40), (40, 50), (40, -1), (0, 0)])
def test_overlap_must_be_smaller_than_the_chunk(max_tokens: int, overlap_tokens: int) -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        chunk(sections_of("text"), max_tokens, overlap_tokens)


def test_tokens_are_words_and_punctuation_marks() -> None:
    assert count_tokens("Holidays: 25 days per year.") == 7
    assert count_tokens("security@northwind.example") == 5
    assert count_tokens("") == 0


def test_samples_stay_in_one_chunk_per_section_at_the_default_budget() -> None:
    # The samples are small: at the production budget every section is one chunk, so a later
    # retrieval test can expect a fact's chunk to carry its section's heading and page.
    for sections in all_sample_sections():
        assert [c.content for c in chunk(sections)] == [s.text for s in sections]
