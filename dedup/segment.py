"""Stage 2, segment: cut each normalised document into passages with offsets in both texts.

A passage is a paragraph (blank-line separated; in wire copy without blank lines, a line that starts
indented opens a new paragraph), a line, or a sentence. Short label-like passages ("Biden", "Putin"
under a photo) are marked ``fragment`` so that later stages leave them out of pairing.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl

from . import schema as S
from .config import SegmentConfig
from .normalise import map_offsets_list

_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_INDENTED_LINE = re.compile(r"\n(?=[ \t]+\S)")
_LINE = re.compile(r"\n")
_WORD = re.compile(r"\w+(?:[’'.-]\w+)*")
_CLOSING = re.compile(r"[.!?…:;\"”’)\]]\s*$")

# A sentence ends at . ! ? (plus closing quotes/brackets) before a space and a capital, digit or quote,
# unless the word before the stop is a known abbreviation or a single capital (initials, U.S.).
_SENTENCE_END = re.compile(r"[.!?…]+[\"”’)\]]*(?=\s+[\"“‘(\[]?[A-Z0-9])")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sen rep gov gen col lt sgt st jr sr inc ltd co corp vs etc no jan feb mar apr "
    "jun jul aug sep sept oct nov dec u.s u.k u.n e.g i.e a.m p.m".split()
)


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """Spans of paragraphs in ``text``, whitespace trimmed.

    >>> t = "First para.\\n\\nSecond\\npara."
    >>> [t[s:e] for s, e in paragraph_spans(t)]
    ['First para.', 'Second\\npara.']
    >>> t = "Wire copy line one\\nwraps here.\\n    Next paragraph."
    >>> [t[s:e] for s, e in paragraph_spans(t)]
    ['Wire copy line one\\nwraps here.', 'Next paragraph.']
    """
    splitter = _BLANK_LINE if _BLANK_LINE.search(text) else _INDENTED_LINE
    return _split(text, splitter)


def line_spans(text: str) -> list[tuple[int, int]]:
    return _split(text, _LINE)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Sentences of every paragraph.

    >>> t = "Mr. Blinken met Lavrov in Stockholm. The U.S. warned Moscow! “We cannot fail.”"
    >>> [t[s:e] for s, e in sentence_spans(t)]
    ['Mr. Blinken met Lavrov in Stockholm.', 'The U.S. warned Moscow!', '“We cannot fail.”']
    """
    out = []
    for ps, pe in paragraph_spans(text):
        start = ps
        for m in _SENTENCE_END.finditer(text, ps, pe):
            before = _word_before(text, start, m.start())
            if m.group().startswith(".") and (before in _ABBREVIATIONS or len(before) == 1):
                continue
            out.extend(_trim(text, start, m.end()))
            start = m.end()
        out.extend(_trim(text, start, pe))
    return out


_LAST_WORD = re.compile(r"([\w.]+)$")
_WINDOW = 40


def _word_before(text: str, start: int, end: int) -> str:
    """The run of word characters and dots that ends ``text[start:end]``, lower case, dots stripped
    from its end ("" when none). Looked for in the last ``_WINDOW`` characters only, unless the run
    fills them: a ``$``-anchored search tries every position of what it is given, and a long sentence
    full of abbreviations was searched once per abbreviation."""
    lo = max(start, end - _WINDOW)
    word = _LAST_WORD.search(text, lo, end)
    if word is not None and word.start() == lo and lo > start:  # the run may go on further left
        word = _LAST_WORD.search(text, start, end)
    return word.group(1).lower().rstrip(".") if word else ""


def _split(text: str, splitter: re.Pattern) -> list[tuple[int, int]]:
    out, start = [], 0
    for m in splitter.finditer(text):
        out.extend(_trim(text, start, m.start()))
        start = m.end()
    out.extend(_trim(text, start, len(text)))
    return out


def _trim(text: str, start: int, end: int) -> list[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return [(start, end)] if end > start else []


SPLITTERS = {"paragraph": paragraph_spans, "line": line_spans, "sentence": sentence_spans}


def passage_kind(text: str, config: SegmentConfig) -> str:
    """``fragment`` for a short label without closing punctuation, else the configured unit.

    >>> passage_kind("Biden", SegmentConfig())
    'fragment'
    >>> passage_kind("Russia denies it.", SegmentConfig())
    'paragraph'
    """
    words = len(_WORD.findall(text))
    if words <= config.fragment_max_words and not _CLOSING.search(text):
        return "fragment"
    return config.unit


def count_words(text: str) -> int:
    return len(_WORD.findall(text))


PASSAGE_SCHEMA = {
    S.ROW: pl.Int64,
    S.DOC_ID: pl.String,
    S.P_INDEX: pl.Int32,
    S.P_NORM_START: pl.Int64,
    S.P_NORM_END: pl.Int64,
    S.P_START: pl.Int64,
    S.P_END: pl.Int64,
    S.P_KIND: pl.String,
    S.P_TEXT: pl.String,
    S.P_WORDS: pl.Int32,
}


def _trim_raw(raw: str, rs: int, re_: int) -> tuple[int, int]:
    """A raw span trimmed of whitespace at both ends."""
    while rs < re_ and raw[rs].isspace():
        rs += 1
    while re_ > rs and raw[re_ - 1].isspace():
        re_ -= 1
    return rs, re_


def segment(frame: pl.DataFrame, config: SegmentConfig | None = None) -> pl.DataFrame:
    """The stage: one row per passage of every document (the document frame itself is unchanged)."""
    config = config or SegmentConfig()
    split = SPLITTERS[config.unit]
    found = []  # a tuple per passage: the columns of _FOUND
    for row, doc_id, raw, norm, an, ar in frame.select(
        S.ROW, S.DOC_ID, S.TEXT, S.TEXT_NORM, S.ANCHOR_NORM, S.ANCHOR_RAW
    ).iter_rows():
        raw = raw or ""
        spans = split(norm)
        # one mapping per document (vectorised when it has many passages)
        ends = map_offsets_list(an, ar, [p for span in spans for p in span]) if spans else []
        for k, (s, e) in enumerate(spans):
            found.append((row, doc_id, k, s, e, *_trim_raw(raw, ends[2 * k], ends[2 * k + 1]), norm[s:e]))
    cols = {name: list(values) for name, values in zip(_FOUND, zip(*found))} if found else {name: [] for name in _FOUND}
    cols[S.P_KIND], cols[S.P_WORDS] = kinds_and_words(cols[S.P_TEXT], config)
    return pl.DataFrame({name: cols[name] for name in PASSAGE_SCHEMA}, schema=PASSAGE_SCHEMA)


# the passage columns found while cutting, in the order of segment's tuples (kind and words come after)
_FOUND = (S.ROW, S.DOC_ID, S.P_INDEX, S.P_NORM_START, S.P_NORM_END, S.P_START, S.P_END, S.P_TEXT)


def kinds_and_words(texts: list[str], config: SegmentConfig) -> tuple[list[str], list[int]]:
    """:func:`passage_kind` and :func:`count_words` of every passage, vectorised: polars counts the
    words of ASCII passages (there Rust's ``\\w``, ``\\s`` and ``$`` agree with Python's, but for
    four separators), and any other passage goes through the two functions themselves. A test checks
    both ways agree."""
    col = pl.Series(texts, dtype=pl.String)
    frame = pl.DataFrame({"t": col}).select(
        # ASCII, less the separators \x1c-\x1f that Python's \s matches and Rust's does not
        ascii_=(pl.col("t").str.len_bytes() == pl.col("t").str.len_chars()) & ~pl.col("t").str.contains("[\x1c-\x1f]"),
        words=pl.col("t").str.count_matches(_WORD.pattern).cast(pl.Int64),
        closing=pl.col("t").str.contains(_CLOSING.pattern),
    )
    words = frame["words"].to_list()
    short = (frame["words"] <= config.fragment_max_words) & ~frame["closing"]
    kinds = ["fragment" if k else config.unit for k in short.to_list()]
    for i in np.flatnonzero(~frame["ascii_"].to_numpy()).tolist():
        kinds[i], words[i] = passage_kind(texts[i], config), count_words(texts[i])
    return kinds, words
