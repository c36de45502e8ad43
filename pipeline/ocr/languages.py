"""Language names as users write them (``en``, ``french``, ``deu``) mapped to one canonical code.

Canonical codes follow PaddleOCR's ``lang`` names (what ``PADDLEOCR_LANG`` holds); each engine
maps them onto its own models (Tesseract traineddata names are kept here too).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import NamedTuple

from pipeline.errors import EngineUnavailableError


class Language(NamedTuple):
    """One language: canonical (PaddleOCR) code, Tesseract traineddata name, script."""

    code: str
    tesseract: str
    script: str


_LANGUAGES: dict[str, tuple[Language, tuple[str, ...]]] = {
    "en": (Language("en", "eng", "latin"), ("eng", "english")),
    "fr": (Language("fr", "fra", "latin"), ("fra", "fre", "french", "francais", "français")),
    "german": (Language("german", "deu", "latin"), ("de", "deu", "ger", "deutsch")),
    "es": (Language("es", "spa", "latin"), ("spa", "spanish", "espanol", "español")),
    "nl": (Language("nl", "nld", "latin"), ("nld", "dut", "dutch", "nederlands")),
    "it": (Language("it", "ita", "latin"), ("ita", "italian", "italiano")),
    "pt": (Language("pt", "por", "latin"), ("por", "portuguese", "português")),
    "ch": (Language("ch", "chi_sim", "han"), ("zh", "zh-cn", "zh_cn", "chi_sim", "chinese", "zh-hans")),
    "chinese_cht": (Language("chinese_cht", "chi_tra", "han"), ("zh-tw", "zh_tw", "chi_tra", "zh-hant")),
    "japan": (Language("japan", "jpn", "japanese"), ("ja", "jp", "jpn", "japanese")),
    "korean": (Language("korean", "kor", "hangul"), ("ko", "kor", "kr")),
}
# Letters beyond ASCII each Latin-script language writes (loanwords included where common).
LETTERS = {
    "en": "éÉ",
    "fr": "àâæçéèêëîïôœùûüÿÀÂÆÇÉÈÊËÎÏÔŒÙÛÜŸ",
    "german": "äöüßÄÖÜéÉ",
    "es": "áéíñóúüÁÉÍÑÓÚÜ",
    "nl": "àáèéêëïóöüÀÉËÏÓÖÜ",
    "it": "àèéìíîòóùúÀÈÉÌÒÙ",
    "pt": "ãõáâàçéêíóôúüÃÕÁÂÀÇÉÊÍÓÔÚ",
}
# Punctuation and symbols of printed Latin-script text, beyond ASCII.
SYMBOLS = "‘’‚“”„«»‹›–—…•·°§¶©®™€£¥¢±×÷µ¼½¾¹²³¿¡′″"

_ALIASES: dict[str, Language] = {}
for _code, (_language, _aliases) in _LANGUAGES.items():
    for _alias in (_code, *_aliases):
        _ALIASES[_alias] = _language


def resolve(name: str) -> Language:
    """The language for a user-written name; EngineUnavailableError naming it when unknown."""
    key = name.strip().lower().replace(" ", "")
    try:
        return _ALIASES[key]
    except KeyError:
        known = ", ".join(sorted(_LANGUAGES))
        raise EngineUnavailableError(
            f"unknown OCR language {name!r}; use one of {known} (check PADDLEOCR_LANG and lang_hints)"
        ) from None


def latin_alphabet(languages: tuple[Language, ...]) -> str | None:
    """Every character Latin-script ``languages`` print; None when one of them is not Latin."""
    if any(language.script != "latin" for language in languages):
        return None
    ascii_printable = "".join(chr(c) for c in range(0x20, 0x7F))
    return ascii_printable + SYMBOLS + "".join(LETTERS.get(language.code, "") for language in languages)


def _count(charset: Collection[str], first: str, last: str) -> int:
    return sum(1 for ch in charset if first <= ch <= last)


# What a recogniser's character list must hold to read a script. Counts, not single letters: a
# Chinese list carries a handful of kana or hangul symbols that read no Japanese or Korean text.
SCRIPT_TESTS: dict[str, Callable[[Collection[str]], bool]] = {
    "latin": lambda cs: all(ch in cs for ch in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    "han": lambda cs: _count(cs, "\u4e00", "\u9fff") >= 3000,  # CJK unified ideographs
    # Hiragana and katakana (~170 letters) next to the ideographs Japanese also writes.
    "japanese": lambda cs: _count(cs, "\u3041", "\u30ff") >= 150 and _count(cs, "\u4e00", "\u9fff") >= 2000,
    "hangul": lambda cs: _count(cs, "\uac00", "\ud7a3") >= 2000,  # precomposed syllables
}


def scripts_read(charset: Collection[str]) -> frozenset[str]:
    """The scripts (``Language.script``) a recogniser with these output characters can read."""
    chars = charset if isinstance(charset, (set, frozenset)) else set(charset)
    return frozenset(script for script, test in SCRIPT_TESTS.items() if test(chars))


def resolve_all(names: tuple[str, ...]) -> tuple[Language, ...]:
    """Each name resolved, duplicates dropped, order kept; English when none is given."""
    out: list[Language] = []
    for name in names or ("en",):
        language = resolve(name)
        if language not in out:
            out.append(language)
    return tuple(out)
