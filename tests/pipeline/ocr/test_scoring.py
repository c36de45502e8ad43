"""CER/WER/bag-of-words F1 as tests/resources/ocr/MANIFEST.md defines them."""

from __future__ import annotations

import random

import pytest

from pipeline.ocr.scoring import bag_of_words_f1, cer, levenshtein, normalize, score, wer


def _naive(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        prev, row[0] = row[:], i
        for j, y in enumerate(b, start=1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (x != y))
    return row[-1]


def test_levenshtein_matches_the_textbook_recurrence() -> None:
    rng = random.Random(7)
    for _ in range(300):
        a = "".join(rng.choice("ab c") for _ in range(rng.randint(0, 15)))
        b = "".join(rng.choice("ab c") for _ in range(rng.randint(0, 15)))
        assert levenshtein(a, b) == _naive(a, b), (a, b)
    assert levenshtein("kitten", "sitting") == 3


def test_whitespace_and_unicode_forms_do_not_count() -> None:
    assert normalize("  a\n\n b\tc ") == "a b c"
    assert cer("café au lait", "cafe\u0301  au\nlait") == 0.0  # NFD é is the same text


@pytest.mark.parametrize(
    ("ref", "hyp", "expected_cer", "expected_wer"),
    [
        ("abcd", "abcd", 0.0, 0.0),
        ("abcd", "abed", 0.25, 1.0),
        ("one two", "two one", 6 / 7, 1.0),
        ("ab", "", 1.0, 1.0),
    ],
)
def test_rates(ref: str, hyp: str, expected_cer: float, expected_wer: float) -> None:
    assert cer(ref, hyp) == pytest.approx(expected_cer)
    assert wer(ref, hyp) == pytest.approx(expected_wer)


def test_bag_of_words_ignores_order() -> None:
    assert bag_of_words_f1("one two three", "three one two") == 1.0
    assert bag_of_words_f1("a b", "a c") == pytest.approx(0.5)
    assert score("one two", "two one").bow_f1 == 1.0
