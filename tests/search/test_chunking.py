"""Chunks follow reading order: pages, then paragraphs; spans point back into the page text."""

from __future__ import annotations

from pipeline.llm.chunking import PageText
from pipeline.search.chunking import cut_pages


def test_chunks_keep_page_and_exact_span() -> None:
    page_2 = "Heading\n\nFirst paragraph, short.\nIts second line.\n\n\n   " + "A long paragraph. " * 30 + "\n\nLast."
    pages = [PageText(2, page_2), PageText(1, "Only one page-one paragraph."), PageText(3, "  \n\n ")]
    chunks = cut_pages(pages, max_chars=120)
    texts = {1: pages[1].text, 2: page_2}
    assert [c.chunk_no for c in chunks] == list(range(len(chunks)))
    assert [c.page_no for c in chunks] == sorted(c.page_no for c in chunks)  # page order, none from the blank page
    assert chunks[0].page_no == 1 and chunks[0].text == "Only one page-one paragraph."
    for chunk in chunks:
        assert texts[chunk.page_no][chunk.char_start : chunk.char_end] == chunk.text
        assert 0 < len(chunk.text) <= 120 and chunk.text == chunk.text.strip()
    # Short paragraphs are packed together; the long one is cut at sentence ends, not mid-word.
    assert chunks[1].text.startswith("Heading\n\nFirst paragraph")
    long_parts = [c.text for c in chunks if "long paragraph" in c.text]
    assert len(long_parts) >= 4 and all(p.endswith(".") for p in long_parts[:-1])


def test_a_word_longer_than_a_chunk_is_cut_hard() -> None:
    chunks = cut_pages([PageText(1, "x" * 250)], max_chars=100)
    assert [len(c.text) for c in chunks] == [100, 100, 50]
    assert [(c.char_start, c.char_end) for c in chunks] == [(0, 100), (100, 200), (200, 250)]
