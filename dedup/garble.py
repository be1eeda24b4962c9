"""Stage 4, garble scoring: which copy of a story is damaged, and how.

A spinner's paraphrase keeps the shape of its original and breaks facts: a name merged or misspelt,
a figure or a date invented, a verb of talking turned into a verb of meeting, a hedge ("will be ready
to invade") turned into a claim ("will invade"), one side's soldiers made the other's, words inside
quotation marks reworded. Each detector below looks for one such kind of damage and reports it as a
:class:`Reason` with the exact span in the scored text (and in the original, when there is one) and a
sentence a reviewer can check.

Two modes:

* **paired** (:func:`score_pair`): an original is known (the first member of a caption pair, a
  corpus cluster's representative, a pair the user gives). The rewrite's tokens are checked against
  the original's (support sets for names, numbers, dates and sides; a token alignment for edits that
  keep their neighbours: "large landing ship" -> "large land ship").
* **unpaired** (:func:`score_text`): intrinsic signals only, with the rest of the document as context
  (merged names built from two name parts seen elsewhere, a one-off misspelling of a name the
  document spells otherwise, doubled words, unbalanced quotes, a parenthesis that gives a person
  another person's role).

The score. Each reason type has a severity in (0, 1), the chance that this one finding alone means a
distorted passage (:data:`SEVERITY`, set by reading the seed article's pairs); a passage's raw score is
their noisy-or, ``1 - prod(1 - severity)``. ``garble_score`` is the raw score mapped through a logistic
curve (Platt scaling, :func:`fit_platt`) fitted on labelled data with both classes weighted equally, so
0.5 is the even-odds point and the default threshold. There are two curves (:data:`CALIBRATION`; refit
with ``python -m benchmarks.garble_eval --fit``): ``summary``, for a rewrite much shorter than its
original, fitted on FRANK's human factuality labels; ``paraphrase``, for a rewrite of about its
original's length and for unpaired scoring, fitted on the seed article's labelled caption pairs.
A passage is ``garbled`` when its score reaches the threshold, ``faithful`` otherwise, and
``not scored`` when it has too few words to judge.

Everything here is model-free: word lists, rapidfuzz and wordfreq's frequency table (offline).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import asdict, dataclass
from functools import cached_property, lru_cache
from itertools import accumulate, compress, count, filterfalse
from operator import attrgetter, eq, itemgetter
from pathlib import Path
from typing import Iterable

from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from .minhash import fold
from .normalise import _apostrophe_inside_word, _possessive_or_elided
from .pairs import _NUMBER_WORDS, _THOUSANDS_COMMA
from .segment import sentence_spans

GARBLED, FAITHFUL, NOT_SCORED = "garbled", "faithful", "not scored"

# How strongly one finding of each type points to a distorted passage (noisy-or of these is the raw
# score). Omissions weigh little: a caption that leaves out a date is shorter, not wrong.
PAIRED_SEVERITY: dict[str, float] = {
    "entity_invented": 0.7,
    "entity_changed": 0.8,
    "entity_dropped": 0.15,
    "name_merged": 0.85,
    "name_misspelt": 0.75,
    "number_changed": 0.85,
    "number_invented": 0.7,
    "number_dropped": 0.35,
    "date_invented": 0.75,
    "date_changed": 0.8,
    "date_dropped": 0.15,
    "event_changed": 0.8,
    "side_swapped": 0.9,
    "nationality_invented": 0.6,
    "modality_changed": 0.7,
    "modality_added": 0.3,
    "negation_flipped": 0.85,
    "quote_altered": 0.75,
    "term_corrupted": 0.7,
    "relation_changed": 0.8,
    "content_invented": 0.3,
}
UNPAIRED_SEVERITY: dict[str, float] = {  # also run on a rewrite
    "name_variant": 0.7,
    "doubled_words": 0.7,
    "quote_unbalanced": 0.5,
    "quote_repaired": 0.5,
    "role_in_parenthesis": 0.85,
}
SEVERITY: dict[str, float] = {**PAIRED_SEVERITY, **UNPAIRED_SEVERITY}
PAIRED_TYPES = tuple(PAIRED_SEVERITY)
UNPAIRED_TYPES = ("name_merged",) + tuple(UNPAIRED_SEVERITY)

_CALIBRATION_FILE = Path(__file__).with_name("garble_calibration.json")


def _load_calibration() -> dict:
    return json.loads(_CALIBRATION_FILE.read_text(encoding="utf-8"))


CALIBRATION: dict = _load_calibration()


def calibrate(raw: float, regime: str = "paraphrase", calibration: dict | None = None) -> float:
    """The raw noisy-or score mapped to a probability of garble at even odds.

    >>> calibrate(0.0, calibration={"a": 6.0, "b": -3.0}) < 0.5 < calibrate(0.9, calibration={"a": 6.0, "b": -3.0})
    True
    """
    cal = calibration or CALIBRATION[regime]
    return 1.0 / (1.0 + math.exp(-(cal["a"] * raw + cal["b"])))


def fit_platt(raw, labels, *, l2: float = 0.002, iterations: int = 100) -> dict:
    """Fit ``p = 1 / (1 + exp(-(a * raw + b)))`` by Newton's method, both classes weighted equally
    (so the curve does not carry the training set's base rate) and an L2 penalty on ``a`` (so that
    perfectly separated data still gives a finite slope).

    >>> cal = fit_platt([0.0, 0.1, 0.0, 0.8, 0.9, 0.7], [0, 0, 0, 1, 1, 1])
    >>> calibrate(0.05, calibration=cal) < 0.5 < calibrate(0.75, calibration=cal)
    True
    """
    import numpy as np

    x = np.asarray(raw, dtype=float)
    y = np.asarray(labels, dtype=float)
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    if n_pos == 0 or n_neg == 0:
        raise ValueError("fit_platt needs examples of both classes")
    w = np.where(y == 1, 1 / (2 * n_pos), 1 / (2 * n_neg))  # each class weighs 1/2 in all
    a = b = 0.0
    for _ in range(iterations):
        p = 1 / (1 + np.exp(-(a * x + b)))
        g = np.array([np.sum(w * (p - y) * x) + l2 * a, np.sum(w * (p - y))])
        h = w * p * (1 - p)
        H = np.array([[np.sum(h * x * x) + l2, np.sum(h * x)], [np.sum(h * x), np.sum(h) + 1e-9]])
        step = np.linalg.solve(H, g)
        a, b = a - step[0], b - step[1]
        if np.max(np.abs(step)) < 1e-10:
            break
    return {"a": float(a), "b": float(b)}


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    """One finding: its type, the span in the scored text, the span in the original (paired), why."""

    type: str
    start: int
    end: int
    explanation: str
    orig_start: int | None = None
    orig_end: int | None = None

    @property
    def severity(self) -> float:
        return SEVERITY[self.type]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """A passage's garble score (0-1), label and reasons; ``raw`` is the uncalibrated noisy-or."""

    score: float
    label: str
    reasons: tuple[Reason, ...] = ()
    raw: float = 0.0
    mode: str = "paired"

    def to_dict(self) -> dict:
        return {
            "garble_score": round(self.score, 4),
            "garble_label": self.label,
            "garble_raw": round(self.raw, 4),
            "garble_mode": self.mode,
            "garble_reasons": [r.to_dict() for r in self.reasons],
        }


def verdict(reasons: Iterable[Reason], *, threshold: float = 0.5, mode: str = "paired", words: int | None = None,
            min_words: int = 3, regime: str = "paraphrase", calibration: dict | None = None) -> Verdict:
    """Combine reasons (duplicates of the same type and span counted once) into a :class:`Verdict`."""
    unique: dict[tuple, Reason] = {}
    for r in reasons:
        unique.setdefault((r.type, r.start, r.end), r)
    ordered = tuple(sorted(unique.values(), key=lambda r: (r.start, r.end, r.type)))
    if words is not None and words < min_words:
        return Verdict(0.0, NOT_SCORED, ordered, 0.0, mode)
    keep = 1.0
    for r in ordered:
        keep *= 1.0 - r.severity
    raw = 1.0 - keep
    score = calibrate(raw, regime, calibration)
    return Verdict(score, GARBLED if score >= threshold else FAITHFUL, ordered, raw, mode)


# ---------------------------------------------------------------------------------------------
# tokens and word lists
# ---------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\d+(?:[.,]\d+)*(?:st|nd|rd|th)?|[^\W\d_]+(?:['’][^\W\d_]+)*")
# the same pattern for ASCII text, where its classes are these byte sets (a third faster to scan)
_TOKEN_ASCII = re.compile(r"[0-9]+(?:[.,][0-9]+)*(?:st|nd|rd|th)?|[A-Za-z]+(?:'[A-Za-z]+)*")


class Token:
    """A word or number with its offsets (a slotted class: millions are made per run)."""

    __slots__ = ("text", "start", "end", "low", "cap", "initial", "number")

    def __init__(self, text: str, start: int, end: int, low: str, cap: bool, initial: bool):
        self.text, self.start, self.end = text, start, end
        self.low = low  # lower case, ’ as ', accents off, possessive 's cut
        self.cap = cap  # starts with a capital
        self.initial = initial  # a capitalised first word of a sentence (no evidence of a name); False for lower case
        self.number = text[0].isdigit()

    def __repr__(self) -> str:
        return f"Token({self.text!r}, {self.start}, {self.end})"


def tokens(text: str, start: int = 0, end: int | None = None) -> list[Token]:
    """Word and number tokens with offsets; with ``start`` and ``end``, those of that stretch of
    ``text`` (a sentence, say), exactly as the whole text's tokens have them: the stretch must not
    cut a token, and the gap before it is read back to the previous token.

    One findall gives each token with the gap before it, and the offsets add up from the lengths:
    a Match object per token, asked for its text and span, made this about 15% slower (tokens are
    a third of the time of scoring a near copy against its original).

    >>> [(t.text, t.low, t.initial) for t in tokens("Ukraine’s troops. “Biden")]
    [('Ukraine’s', 'ukraine', True), ('troops', 'troops', False), ('Biden', 'biden', True)]
    >>> [(t.text, t.start, t.initial) for t in tokens("He left.\\nBiden spoke", 9)]
    [('Biden', 9, True), ('spoke', 15, False)]
    """
    while start and _gap_char(text[start - 1]):  # back over the gap, to where the previous token ends
        start -= 1
    first = start == 0  # no token before the stretch: its first capitalised word opens the text
    out: list[Token] = []
    at = start
    found = _gap_token(text).findall(text, start, len(text) if end is None else end)
    for gap, word in found:
        s = at + len(gap)
        at = s + len(word)
        low = low_of(word)  # cached: the words of a corpus repeat
        if word[0].isupper():  # is the capital evidence of a name? (only asked of capitalised words)
            gap = gap.rstrip(" \t\n“”\"‘’'([")
            out.append(Token(word, s, at, low, True, (first and not out) if not gap else gap[-1] in ".!?:"))
        else:
            out.append(Token(word, s, at, low, False, False))
    return out


def _gap_char(ch: str) -> bool:
    """Whether ``ch`` cannot be part of a token (both patterns' gaps: ``[\\W_]``, which in ASCII is
    every character but a letter or a digit)."""
    return ch == "_" or not ch.isalnum()


def _gap_token(text: str) -> re.Pattern:
    return _GAP_TOKEN_ASCII if text.isascii() else _GAP_TOKEN


# a token with the gap before it: every character that cannot start one (in the ASCII pattern, all
# but letters and digits; in the other, \W and the underscore), so that the gap ends where a token starts
_GAP_TOKEN_ASCII = re.compile(r"([^0-9A-Za-z]*)(" + _TOKEN_ASCII.pattern + ")")
_GAP_TOKEN = re.compile(r"([\W_]*)(" + _TOKEN.pattern + ")")


@lru_cache(maxsize=1 << 17)
def low_of(word: str) -> str:
    """A token's ``low`` from its text alone (what :func:`tokens` gives it).

    >>> low_of("Ukraine’s"), low_of("Jiménez"), low_of("ŞIŞLI")
    ('ukraine', 'jimenez', 'sisli')
    """
    low = word.lower().replace("’", "'")
    if not low.isascii():
        low = _plain(low)
    if low.endswith("'s") and len(low) > 2:
        low = low[:-2]
    return low


def capitals(ws: list[str]) -> list[str]:
    """The ``low`` of each capitalised word of ``ws`` (:func:`words`), in order: what names are made
    of (C-level filtering; ``low_of`` is cached).

    >>> capitals(words("Ukraine’s troops met Biden's aides in KYIV"))
    ['ukraine', 'biden', 'kyiv']
    """
    return list(map(low_of, compress(ws, map(str.isupper, map(itemgetter(0), ws)))))


def words(text: str) -> list[str]:
    """The texts of :func:`tokens` (one C-level regex pass, no Token objects): what the cheap checks
    of the unpaired detectors read."""
    return (_TOKEN_ASCII if text.isascii() else _TOKEN).findall(text)


def _plain(word: str) -> str:
    """Accents off, so that "Jiménez" supports "Jimenez". A word of marks alone keeps them: the
    half-width kana sound marks "ﾞ" and "ﾟ" are letters that NFKD makes combining marks, and a token's
    ``low`` is never empty.

    >>> _plain("Jiménez"), _plain("ﾟ")
    ('Jimenez', 'ﾟ')
    """
    if word.isascii():
        return word
    return "".join(ch for ch in unicodedata.normalize("NFKD", word) if not unicodedata.combining(ch)) or word


STOP = frozenset(
    """a an the of to in on at for by with from and or but nor is are was were be been being am has have had
    having it its it's this that these those he she they his her hers their theirs them him we us our you your
    i me my as not no after before over under into onto about than then so up down out off who whom whose
    which what when where while why how will would can could may might must shall should also more most such
    there here if do does did done just said says say all any some each both other another one very much
    many own same too only again further once during through between against among per via upon within
    without whether because since until though although however yet still even ever now new mr mrs ms
    according""".split()
)

_WEEKDAYS = frozenset("monday tuesday wednesday thursday friday saturday sunday".split())
_MONTH_NAMES = "january february march april may june july august september october november december".split()
_MONTHS = frozenset(_MONTH_NAMES) | {m[:3] for m in _MONTH_NAMES} | {"sept"}


def _date_value(t: "Token") -> str:
    """The comparable value of a date word: a month abbreviation as its full name, a day as digits."""
    if t.number:
        return _number_value(t)
    return next((m for m in _MONTH_NAMES if m.startswith(t.low) and len(t.low) >= 3), t.low) if t.low in _MONTHS else t.low


_SPANS = frozenset("decade decades century centuries".split())
_RELATIVE_DAYS = frozenset("today yesterday tomorrow tonight".split())
_DATE_WORDS = _WEEKDAYS | _MONTHS | _SPANS | _RELATIVE_DAYS  # what _date_kind can name, numbers aside

# Countries and the demonyms that name their side; each demonym maps to its country.
_SIDES = {
    "russia": "russian russians", "ukraine": "ukrainian ukrainians", "belarus": "belarusian belarussian belarusians",
    "usa": "american americans", "uk": "british briton britons", "france": "french", "germany": "german germans",
    "italy": "italian italians", "china": "chinese", "japan": "japanese", "india": "indian indians",
    "iran": "iranian iranians", "iraq": "iraqi iraqis", "israel": "israeli israelis", "palestine": "palestinian palestinians",
    "syria": "syrian syrians", "turkey": "turkish turks", "poland": "polish poles", "spain": "spanish",
    "canada": "canadian canadians", "mexico": "mexican mexicans", "brazil": "brazilian brazilians",
    "egypt": "egyptian egyptians", "afghanistan": "afghan afghans", "pakistan": "pakistani pakistanis",
    "korea": "korean koreans", "georgia": "georgian georgians", "lebanon": "lebanese", "saudi": "saudi saudis",
    "australia": "australian australians", "ireland": "irish", "scotland": "scottish scots", "wales": "welsh",
    "england": "english", "greece": "greek greeks", "sweden": "swedish swedes", "norway": "norwegian norwegians",
    "finland": "finnish finns", "netherlands": "dutch", "belgium": "belgian belgians", "austria": "austrian austrians",
    "hungary": "hungarian hungarians", "romania": "romanian romanians", "serbia": "serbian serbs",
    "armenia": "armenian armenians", "azerbaijan": "azerbaijani azeri", "kazakhstan": "kazakh kazakhs",
    "lithuania": "lithuanian lithuanians", "latvia": "latvian latvians", "estonia": "estonian estonians",
    "moldova": "moldovan moldovans", "cuba": "cuban cubans", "venezuela": "venezuelan venezuelans",
    "nigeria": "nigerian nigerians", "kenya": "kenyan kenyans", "ethiopia": "ethiopian ethiopians",
    "libya": "libyan libyans", "yemen": "yemeni yemenis", "taiwan": "taiwanese", "vietnam": "vietnamese",
    "soviet": "soviet soviets",
}
DEMONYM: dict[str, str] = {d: country for country, ds in _SIDES.items() for d in ds.split()}
_SIDE_OF: dict[str, str] = {**{country: country for country in _SIDES}, **DEMONYM}  # the side a word names

# Hedges and modal words: dropping one turns a possibility into a claim.
_HEDGES = frozenset(
    """could may might likely unlikely possibly possible probably perhaps reportedly allegedly believed
    believe believes expected expects ready plans planned planning would seems seemed appears appeared
    apparently suspected potential potentially considering considered intends intend""".split()
)
_NEGATIONS = frozenset("not no never none nobody nothing neither nor without cannot unless".split())

# Verb classes whose members a paraphraser may swap for one another; a swap across classes changes
# the event ("They will speak by phone" -> "The two will meet by phone").
_EVENTS = {
    "communicate": "speak speaks spoke spoken speaking talk talks talked talking phone phoned phoning telephoned",
    "meet": "meet meets met meeting visit visits visited visiting",
    "attack": "invade invades invaded invading invasion attack attacks attacked attacking",
    "warn": "warn warns warned warning threaten threatens threatened threatening",
}
EVENT_CLASS: dict[str, str] = {w: c for c, ws in _EVENTS.items() for w in ws.split()}

# Intensifiers and idioms that are repeated on purpose ("very, very difficult", "had had").
_REPEATABLE = frozenset("very really so too much many more far long had that is no yes ha bye oh again round over".split())

# Titles that make a parenthesis a role ("Joe Biden (Russian President Vladimir Putin)").
_ROLES = frozenset(
    """president minister secretary chancellor premier king queen prince leader spokesman spokeswoman
    spokesperson governor senator mayor chairman chief general ambassador envoy pope""".split()
)


@lru_cache(maxsize=200_000)
def zipf(word: str) -> float:
    """wordfreq's Zipf frequency of an English word (0 for words it has never seen): its
    ``zipf_frequency(word, "en")``.

    A word of lower-case ASCII letters, with apostrophes inside ("o'neill"), is split as wordfreq's
    tokenizer splits it (:func:`_wordfreq_tokens`) and looked up in wordfreq's own table, read from
    its data file (:func:`_english_buckets`), with wordfreq's arithmetic and rounding. That skips
    its tokenizer (a tenth of a clean's garble time on Reuters) and the import of wordfreq and of the
    language tables behind it (0.1 s in every process). Any other word asks wordfreq itself. A test
    checks both agree on a corpus's vocabulary and on every apostrophe word of the table.
    """
    if not _APOSTROPHE_WORD.fullmatch(word):
        from wordfreq import zipf_frequency

        return zipf_frequency(word, "en")
    buckets = _english_buckets()
    one_over = 0.0
    for token in _wordfreq_tokens(word):
        bucket = buckets.get(token)
        if bucket is None:
            return 0.0  # wordfreq's floor (zipf_to_freq(0)) for a word with any token unknown
        one_over += 1.0 / 10 ** (-bucket / 100)  # wordfreq's 1/f = 1/f1 + 1/f2 ..., f = cB_to_freq(-bucket)
    freq = max(1.0 / one_over, 1e-9)
    freq = round(freq, math.floor(-math.log(freq, 10)) + 3)  # its three significant digits
    return round(math.log(freq, 10) + 9, 2)


_APOSTROPHE_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
# wordfreq's tokenizer (its "case 4") splits one or two letters and an apostrophe off the start of a
# token when a vowel or h follows ("qu'il", "d'america", "o'hare", not "o'neill"); inside a run of
# letters joined by apostrophes it finds no other break
_ELIDED = re.compile(r"[a-z]{1,2}'(?=[aehiouy])")


def _wordfreq_tokens(word: str) -> list[str]:
    """The tokens wordfreq's English tokenizer makes of ``word`` (lower-case ASCII letters with
    apostrophes inside: see :data:`_APOSTROPHE_WORD`).

    >>> _wordfreq_tokens("o'hare"), _wordfreq_tokens("o'neill"), _wordfreq_tokens("l'h'e")
    (['o', 'hare'], ["o'neill"], ['l', 'h', 'e'])
    """
    if "'" not in word:
        return [word]
    out, at = [], 0
    while (m := _ELIDED.match(word, at)) is not None:
        out.append(m.group()[:-1])  # wordfreq strips the apostrophe
        at = m.end()
    out.append(word[at:])
    return out


@lru_cache(maxsize=1)
def _english_buckets() -> dict[str, int]:
    """wordfreq's English table ("best": its large list, else its small one) as each word's bucket:
    a word in bucket ``i`` has frequency ``10 ** (-i / 100)`` (what ``get_frequency_dict`` gives). Read
    from wordfreq's data file (gzipped msgpack, as its ``read_cBpack`` reads it) without importing it."""
    import gzip
    from importlib.util import find_spec
    from itertools import chain, repeat

    import msgpack

    spec = find_spec("wordfreq")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("wordfreq is not installed; pip install 'wordfreq>=3.0'")
    data = Path(spec.submodule_search_locations[0]) / "data"
    path = next((p for p in (data / "large_en.msgpack.gz", data / "small_en.msgpack.gz") if p.exists()), None)
    if path is None:
        raise RuntimeError(f"wordfreq's English word list is missing from {data}; reinstall wordfreq")
    with gzip.open(path, "rb") as fh:
        pack = msgpack.load(fh, raw=False)
    header = pack[0]
    if not isinstance(header, dict) or header.get("format") != "cB" or header.get("version") != 1:
        raise RuntimeError(f"{path}: not a wordfreq word list of the version read here (header {header!r})")
    buckets = pack[1:]
    return dict(zip(chain.from_iterable(buckets), chain.from_iterable(repeat(i, len(b)) for i, b in enumerate(buckets))))


@lru_cache(maxsize=200_000)
def _stem(w: str) -> str:
    """A crude stem for support checks: plural, past and -ing endings cut.

    >>> [_stem(w) for w in ("troops", "stationed", "landing", "buses", "patrolled", "patrols")]
    ['troop', 'station', 'land', 'bus', 'patrol', 'patrol']
    """
    for suf in ("ing", "ed", "es", "s"):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            w = w[: -len(suf)]
            if suf in ("ing", "ed") and len(w) >= 4 and w[-1] == w[-2] and w[-1] not in "aeiouls":
                w = w[:-1]  # stopped -> stop (but not called -> cal)
            elif suf in ("ing", "ed") and len(w) >= 4 and w[-1] == w[-2] == "l":
                w = w[:-1]  # patrolled -> patrol
            return w
    return w


_VARIANT_RULES = [(re.compile(a), b) for a, b in ((r"ise(s|d)?$", r"ize\1"), (r"yse$", "yze"), (r"our", "or"),
                                                   (r"ence$", "ense"), (r"tre$", "ter"), (r"ll", "l"), (r"-", ""))]


_VARIANT_HINTS = ("ise", "yse", "our", "ence", "tre", "ll", "-")  # a substring each rule needs


@lru_cache(maxsize=200_000)
def _variant(w: str) -> str:
    """British and American spellings to one form (defence/defense, armoured/armored, organise/organize).

    >>> _variant("defence") == _variant("defense"), _variant("armoured") == _variant("armored")
    (True, True)
    """
    if not any(hint in w for hint in _VARIANT_HINTS):  # the cheap check: no rule can fire
        return w
    for pat, rep in _VARIANT_RULES:
        w = pat.sub(rep, w)
    return w


def _derived(a: str, b: str) -> bool:
    """Whether one word is the other plus a short ending (Crimea/Crimean, build/buildup).

    >>> _derived("crimea", "crimean"), _derived("land", "landing"), _derived("russia", "prussia")
    (True, True, False)
    """
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    return len(short) >= 4 and long_.startswith(short) and len(long_) - len(short) <= 4


_ORDINAL_END = re.compile(r"(st|nd|rd|th)$")
_YEAR = re.compile(r"(19|20)\d\d")


def _number_value(tok: Token) -> str:
    return _number_low_value(tok.low)


def _number_low_value(low: str) -> str:
    """A number token's value from its ``low``: thousands commas and ordinal endings off."""
    return _ORDINAL_END.sub("", _THOUSANDS_COMMA.sub("", low))


class _Support:
    """What an original states, in the forms a faithful rewrite may use. The word forms behind
    :meth:`has` are made for one initial at a time, on the first word asked about with that
    initial that is not in the text as it stands (near copies of a long text ask about a handful
    of words, many short pairs about none): a word can only share a stem, a spelling variant or a
    four-letter start with words of its own initial (stems and variants keep a word's first
    letter; a token has no hyphen for a variant rule to drop)."""

    def __init__(self, lows: Iterable[str], number_lows: Iterable[str]):
        self.lows = set(lows)
        self.numbers = set(map(_number_low_value, number_lows))
        self.numbers |= {_NUMBER_WORDS[low] for low in self.lows & _NUMBER_WORDS.keys()}
        self._forms: dict[str, tuple[set[str], set[str], dict[str, list[str]]]] = {}

    @classmethod
    def of(cls, toks: list[Token]) -> "_Support":
        return cls([t.low for t in toks], [t.low for t in toks if t.number])

    @cached_property
    def _by_initial(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for w in self.lows:
            out.setdefault(w[0], []).append(w)
        return out

    def _forms_of(self, initial: str) -> tuple[set[str], set[str], dict[str, list[str]]]:
        """The stems and the spelling variants of the words with this initial, and those of four
        letters or more (numbers aside) by their first four letters."""
        forms = self._forms.get(initial)
        if forms is None:
            ws = self._by_initial.get(initial, [])
            long_words: dict[str, list[str]] = {}
            for w in ws:
                if len(w) >= 4 and not w[0].isdigit():  # a number token's low starts with its digit
                    long_words.setdefault(w[:4], []).append(w)
            forms = self._forms[initial] = (set(map(_stem, ws)), set(map(_variant, ws)), long_words)
        return forms

    def has(self, low: str) -> bool:
        if low in self.lows:
            return True
        if not low:
            return False
        stems, variants, long_words = self._forms_of(low[0])
        if _stem(low) in stems or _variant(low) in variants:
            return True
        if len(low) >= 4:
            return any(_derived(low, w) for w in long_words.get(low[:4], ()))
        return False


# ---------------------------------------------------------------------------------------------
# context: the names a document (or corpus) uses, with counts
# ---------------------------------------------------------------------------------------------


class Context:
    """Capitalised words seen in the rest of a document, with how often; spellings the source uses.

    ``bigrams`` (adjacent word pairs: the terms the source uses) are counted from the token lists on
    first use: most passages are scored without ever asking for them."""

    def __init__(self, names: Counter | None = None, token_lists=None):
        self.names = names if names is not None else Counter()
        self._token_lists = token_lists or []  # token lists, or a function that makes them when asked
        self._findings: dict[str, bool] = {}  # name_finding's answers, by word

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> "Context":
        return cls.from_tokens([tokens(text or "") for text in texts])

    @classmethod
    def from_tokens(cls, token_lists: Iterable[list[Token]]) -> "Context":
        lists = list(token_lists)
        c: Counter = Counter()
        for toks in lists:
            c.update([t.low for t in toks if t.cap and not t.number and len(t.low) >= 3])
        return cls(c, lists)

    @classmethod
    def from_capitals(cls, cap_lists: Iterable[list[str]], texts: list[str]) -> "Context":
        """The context :meth:`from_texts` makes, from each text's :func:`capitals` (names are
        capitalised words, so no Token is made); the token lists behind ``bigrams`` are made only if
        asked for."""
        c: Counter = Counter()
        for caps in cap_lists:
            c.update([low for low in caps if len(low) >= 3])
        return cls(c, lambda: [tokens(text or "") for text in texts])

    @cached_property
    def bigrams(self) -> Counter:
        lists = self._token_lists() if callable(self._token_lists) else self._token_lists
        b: Counter = Counter()
        for toks in lists:
            b.update([(x.low, y.low) for x, y in zip(toks, toks[1:])])
        return b

    @cached_property
    def followers(self) -> dict[str, dict[str, None]]:
        """For each word, the words written right after it, in first-seen order (an index of ``bigrams``,
        so that a huge document is not scanned once per question)."""
        out: dict[str, dict[str, None]] = {}
        for head, nxt in self.bigrams:
            out.setdefault(head, {})[nxt] = None
        return out

    def name_finding(self, low: str) -> bool:
        """Whether :func:`_merged_names` or :func:`_name_variants` finds something in the capitalised
        word ``low`` in this document (asked once per word: names recur across its passages)."""
        found = self._findings.get(low)
        if found is None:
            found = self._findings[low] = _merged_parts(low, self) is not None or _usual_spelling(low, self) is not None
        return found

    @cached_property
    def long_names(self) -> list[str]:
        """The names of four letters or more, in first-seen order."""
        return [n for n in self.names if len(n) >= 4]

    @cached_property
    def names_by_initial(self) -> dict[str, list[tuple[str, int]]]:
        """The names with their counts, grouped by first letter, in first-seen order."""
        out: dict[str, list[tuple[str, int]]] = {}
        for n, c in self.names.items():
            out.setdefault(n[0], []).append((n, c))
        return out


def _name_like(t: Token, lowercase_text: bool) -> bool:
    """Whether a token names something: capitalised inside a sentence, or rare (when the text has no
    capitals to go by, as in lower-cased model summaries)."""
    if t.number or t.low in STOP or len(t.low) < 2:
        return False
    if lowercase_text:
        return zipf(t.low) < 4.0
    if t.cap and not t.initial:
        return True
    return t.cap and zipf(t.low) < 3.0


def _date_kind(t: Token, toks: list[Token], i: int, lowercase_text: bool) -> str | None:
    """weekday | month | year | day (a number next to a month) | span | relative, or None."""
    low = t.low
    if low in _WEEKDAYS:
        return "weekday"
    if low in _MONTHS and (low != "may" or (t.cap and not t.initial) or _next_is_number(toks, i)):
        if lowercase_text and low == "may" and not _next_is_number(toks, i):
            return None
        return "month"
    if t.number and _YEAR.fullmatch(low):
        return "year"
    if t.number and len(low) <= 4:
        near = [toks[j].low for j in (i - 1, i + 1) if 0 <= j < len(toks)]
        if any(n in _MONTHS for n in near):
            return "day"
    if low in _SPANS:
        return "span"
    if low in _RELATIVE_DAYS:
        return "relative"
    return None


def _next_is_number(toks: list[Token], i: int) -> bool:
    return i + 1 < len(toks) and toks[i + 1].number


def _read(toks: "_TokenView | _Sentences", at: list[tuple[int, Token]] | None = None) -> Iterable[tuple[int, Token]]:
    """The tokens a detector reads, with their indices in ``toks``: all, or the pairs ``at`` (those
    of the sentences that differ, :meth:`_Sentences.reading`, of a whole text whose tokens are made
    on demand). A token's neighbours, which may make a number a day, are looked up in ``toks``:
    across sentences, as in the whole text."""
    return enumerate(toks) if at is None else at


# ---------------------------------------------------------------------------------------------
# paired detectors
# ---------------------------------------------------------------------------------------------


def _aligned_positions(o_side: "_TokenView | _Sentences", r_side: "_TokenView | _Sentences", wanted: Iterable[int]) -> dict[int, int]:
    """For each ``wanted`` original token (by index), where in the rewrite its counterpart is (or
    would be): a char offset, from the token alignment (the few tokens asked for, not all)."""
    r_lows = r_side.lows
    if not r_lows:
        return dict.fromkeys(wanted, 0)
    ops = [op for op in Levenshtein.opcodes(o_side.lows, r_lows) if op.src_end > op.src_start]
    starts = [op.src_start for op in ops]  # the ops that cover original tokens cover each once, in order
    out = {}
    for k in wanted:
        op = ops[bisect_right(starts, k) - 1]
        j = min(op.dest_start + (k - op.src_start), max(op.dest_start, op.dest_end - 1))
        out[k] = r_side.token(j).start if j < len(r_lows) else len(r_side.text)
    return out


class _TokenView:
    """A text's tokens as the paired detectors read them: a sequence of tokens, with their words and
    lows, token ``k``, and the index of the token that starts at an offset (:class:`_Sentences`
    answers the same questions of a text tokenised a sentence at a time)."""

    def __init__(self, text: str, toks: list[Token]):
        self.text, self.toks = text, toks

    def __len__(self) -> int:
        return len(self.toks)

    def __iter__(self):
        return iter(self.toks)

    def __getitem__(self, k: int) -> Token:
        return self.toks[k]

    @cached_property
    def lows(self) -> list[str]:
        return [t.low for t in self.toks]

    @cached_property
    def words(self) -> list[str]:
        return [t.text for t in self.toks]

    @property
    def all_tokens(self) -> list[Token]:
        return self.toks

    def token(self, k: int) -> Token:
        return self.toks[k]

    def index_at(self, pos: int) -> int | None:
        k = bisect_left(self.toks, pos, key=_token_start)
        return k if k < len(self.toks) and self.toks[k].start == pos else None


class _Sentences:
    """A long text cut into sentences, whose tokens are made one sentence at a time, when asked:
    what scoring a near copy reads of two versions of a text that share most of their sentences
    word for word. Its words and their lows (one findall a sentence, no Token) serve the whole-text
    questions: what the text states (:class:`_Support`), the token alignment, the names.

    Sentences cover every token of the text, and none is cut: they cover all but white space, and a
    sentence ends before white space (a test checks the sentence-wise tokens against the whole
    text's on the seed, Reuters stories, naughty strings and generated text)."""

    def __init__(self, text: str):
        self.text = text
        self.spans = sentence_spans(text)
        pattern = _TOKEN_ASCII if text.isascii() else _TOKEN
        self.words_by = [pattern.findall(text, s, e) for s, e in self.spans]
        self.lows_by = [list(map(low_of, ws)) for ws in self.words_by]
        self.starts = list(accumulate(map(len, self.words_by), initial=0))[:-1]  # each sentence's first token
        self.words = [w for ws in self.words_by for w in ws]
        self.lows = [low for lows in self.lows_by for low in lows]
        self._toks: dict[int, list[Token]] = {}

    @cached_property
    def texts(self) -> list[str]:
        return [self.text[s:e] for s, e in self.spans]

    def toks(self, i: int) -> list[Token]:
        """The tokens of sentence ``i``, as :func:`tokens` of the whole text gives them."""
        got = self._toks.get(i)
        if got is None:
            got = self._toks[i] = tokens(self.text, *self.spans[i])
        return got

    @cached_property
    def all_tokens(self) -> list[Token]:
        return tokens(self.text)

    @cached_property
    def support(self) -> "_Support":
        return _Support(self.lows, [low for w, low in zip(self.words, self.lows) if w[0].isdigit()])

    def index_at(self, pos: int) -> int | None:
        i = bisect_right(self.spans, (pos, math.inf)) - 1
        if i < 0:
            return None
        toks = self.toks(i)
        k = bisect_left(toks, pos, key=_token_start)
        return self.starts[i] + k if k < len(toks) and toks[k].start == pos else None

    def token(self, k: int) -> Token:
        """Token ``k`` of the whole text (made with its sentence's)."""
        i = bisect_right(self.starts, k) - 1
        return self.toks(i)[k - self.starts[i]]

    __getitem__ = token  # the whole text's tokens, as a sequence made on demand

    def __len__(self) -> int:
        return len(self.words)

    def reading(self, sentences: list[int]) -> list[tuple[int, Token]]:
        """The tokens of these sentences, each with its index in the whole text."""
        return [(self.starts[i] + j, t) for i in sentences for j, t in enumerate(self.toks(i))]


def paired_reasons(original: str, rewrite: str, context: Context | None = None, *,
                   o_toks: list[Token] | None = None, r_toks: list[Token] | None = None) -> list[Reason]:
    """Every finding about ``rewrite`` as a copy of ``original``; spans index the two strings (their
    tokens may be given when already made)."""
    if original == rewrite:  # a verbatim copy distorts nothing (and huge documents repeat lines by the thousand)
        return []
    o_toks = tokens(original) if o_toks is None else o_toks
    r_toks = tokens(rewrite) if r_toks is None else r_toks
    if not r_toks:
        return []
    sup_o, sup_r = _Support.of(o_toks), _Support.of(r_toks)
    lower = not any(ch.isupper() for ch in rewrite)
    summary = regime_of(len(o_toks), len(r_toks)) == "summary"  # omissions are the point of a summary
    ctx = context or Context()
    reasons: list[Reason] = []
    o_side, r_side = _TokenView(original, o_toks), _TokenView(rewrite, r_toks)
    reasons += _names_and_content(o_side, r_side, sup_o, sup_r, lower, summary, ctx)
    reasons += _numbers(o_side, r_side, sup_o, sup_r, lower, summary)
    reasons += _dates(o_side, r_side, lower, summary)
    # Sides, hedges, negations and events are compared where they stand: against the whole original
    # for a short paraphrase, against the original's best-matching sentences for each sentence of a
    # summary or of a long text (a whole document against its near duplicate).
    # A summary fuses sentences: two of the original's stand behind each of its own. A long text set
    # against another version of itself (a near duplicate) is compared sentence to sentence, and
    # only where its sentence rewrites one of the original's.
    if summary:
        parts = _local_pairs(original, rewrite, o_toks, r_toks, k=2)
    elif len(o_toks) > _LONG_TEXT:
        parts = _local_pairs(original, rewrite, o_toks, r_toks, k=1, min_share=_NEW_MATTER, skip_verbatim=True)
    else:
        parts = [(o_toks, r_toks)]
    for o_part, r_part in parts:
        reasons += _compared_where_they_stand(o_part, r_part)
    reasons += _quotes(original, rewrite)
    reasons += _terms(o_side, r_side, ctx)
    reasons += _markers(original, rewrite)
    if not summary:
        reasons += _places(o_side, r_side)
    return _place_losses(reasons, o_side, r_side)


def _compared_where_they_stand(o_part: list[Token], r_part: list[Token]) -> list[Reason]:
    """Sides, hedges, negations and events of a part of the rewrite against the part of the original
    it rewrites."""
    return (_sides(o_part, r_part) + _counted_words(o_part, r_part, _HEDGES, "modality_changed", "hedge")
            + _counted_words(o_part, r_part, _NEGATIONS, "negation_flipped", "negation") + _events(o_part, r_part))


_LONG_TEXT = 120  # tokens: an original longer than this is compared with its rewrite sentence by sentence
_NEW_MATTER = 0.6  # a rewrite's sentence sharing less of its content words with the original's best one is new matter


def near_copy_reasons(o: "_Sentences", r: "_Sentences", ctx: Context) -> list[Reason]:
    """:func:`paired_reasons` of a long rewrite ``r`` against another version ``o`` of itself (a near
    duplicate: not a summary, the original over ``_LONG_TEXT`` tokens),
    reading only the sentences the two do not share word for word.

    A sentence both versions have, each detector finds nothing in: its words are in both texts (so
    no name, figure or date is new or lost there, and its places name the same people), and
    :func:`paired_reasons` leaves it out of the sentence-to-sentence comparisons (sides, hedges,
    negations, events). So the detectors read the other sentences' tokens, and what they ask of the
    whole texts (what each states, the dates each names, the token alignment, the names of the
    original) is answered from the words of every sentence; tokens are made sentence by sentence,
    and only where a finding needs them. Quotations and position markers are read in the whole
    strings; a number's neighbours (a month beside it makes it a day) are looked up across
    sentences, as in the whole text. Tests compare the verdicts with :func:`score_pair`'s on
    Reuters' near duplicates, on seeded edited copies of Reuters stories and on copies of stories
    broken up by naughty strings: the same.
    """
    original, rewrite = o.text, r.text
    shared = set(o.texts) & set(r.texts)
    o_changed = [i for i, t in enumerate(o.texts) if t not in shared]
    r_changed = [i for i, t in enumerate(r.texts) if t not in shared]
    o_at, r_at = o.reading(o_changed), r.reading(r_changed)
    sup_o, sup_r = o.support, r.support
    lower = not any(ch.isupper() for ch in rewrite)
    reasons: list[Reason] = []
    reasons += _names_and_content(o, r, sup_o, sup_r, lower, False, ctx, o_at, r_at)
    reasons += _numbers(o, r, sup_o, sup_r, lower, False, o_at, r_at)
    reasons += _dates(o, r, lower, False, o_at, r_at)
    o_sets = [set(lows) - STOP for lows in o.lows_by]
    for i in r_changed:  # _local_pairs(k=1), for the sentences that differ
        for best in _rewritten(set(r.lows_by[i]) - STOP, o_sets, 1, _NEW_MATTER):
            reasons += _compared_where_they_stand(o.toks(best), r.toks(i))
    reasons += _quotes(original, rewrite)
    reasons += _terms(o, r, ctx)
    reasons += _markers(original, rewrite)
    reasons += _places(o, r, [k for k, _ in r_at])  # in a shared sentence, the original's own clause names the same people
    return _place_losses(reasons, o, r)


def _place_losses(reasons: list[Reason], o_side: "_TokenView | _Sentences", r_side: "_TokenView | _Sentences") -> list[Reason]:
    """A loss ("the original's 'Monday' is left out") has no text in the rewrite; give it the empty span
    where the lost words would have stood, from the token alignment."""
    index: dict[int, int] = {}  # a loss's original start -> the original token that starts there
    for r in reasons:
        if r.start == r.end and r.orig_start is not None:
            k = o_side.index_at(r.orig_start)
            if k is not None:
                index[r.orig_start] = k
    if not index:
        return reasons
    where = _aligned_positions(o_side, r_side, set(index.values()))
    out = []
    for r in reasons:
        if r.start == r.end and r.orig_start in index:
            pos = where[index[r.orig_start]]
            r = Reason(r.type, pos, pos, r.explanation, r.orig_start, r.orig_end)
        out.append(r)
    return out


_token_start = attrgetter("start")


def _local_pairs(original, rewrite, o_toks, r_toks, k: int = 2, min_share: float = 0.0,
                 skip_verbatim: bool = False) -> list[tuple[list[Token], list[Token]]]:
    """Each sentence of the rewrite with the ``k`` sentences of the original sharing most content words;
    a sentence sharing less than ``min_share`` of its content words with them is new matter and left out.
    With ``skip_verbatim``, so is a sentence that the original has word for word: it distorts nothing
    (set beside another sentence holding all its words, it would be blamed for what that one says)."""
    def content(toks):
        return {t.low for t in toks if t.low not in STOP}

    o_spans, r_spans = sentence_spans(original), sentence_spans(rewrite)
    o_sents = _by_sentence(o_spans, o_toks)
    o_sets = [content(ts) for ts in o_sents]
    verbatim = {original[s:e] for s, e in o_spans} if skip_verbatim else set()
    out = []
    for (s, e), r_part in zip(r_spans, _by_sentence(r_spans, r_toks)):
        if rewrite[s:e] not in verbatim and (best := _rewritten(content(r_part), o_sets, k, min_share)):
            out.append(([t for i in best for t in o_sents[i]], r_part))
    return out


def _rewritten(want: set[str], o_sets: list[set[str]], k: int, min_share: float) -> list[int]:
    """Which ``k`` sentences of the original a sentence of the rewrite with content words ``want``
    rewrites, in order: those sharing most of them (ties to the earlier), or none when they share
    less than ``min_share`` of them (new matter)."""
    if not want or not o_sets:
        return []
    if k == 1:  # the first sentence sharing most (what the sort below gives, without sorting)
        sizes = [len(want & o) for o in o_sets]
        best = [sizes.index(max(sizes))]
    else:
        best = sorted(range(len(o_sets)), key=lambda i: (-len(want & o_sets[i]), i))[:k]
    shared = set().union(*(want & o_sets[i] for i in best))
    return sorted(best) if len(shared) / len(want) >= min_share else []


def _by_sentence(spans: list[tuple[int, int]], toks: list[Token]) -> list[list[Token]]:
    """The tokens that start inside each sentence span (tokens are in text order: bisected, not
    scanned once per sentence)."""
    starts = [t.start for t in toks]
    return [toks[bisect_left(starts, s) : bisect_left(starts, e)] for s, e in spans]


def _span(tok: Token) -> tuple[int, int]:
    return tok.start, tok.end


def _names_and_content(o_toks, r_toks, sup_o, sup_r, lower, summary, ctx, o_at=None, r_at=None) -> list[Reason]:
    """Names and rare words of the rewrite the original does not support, and the original's names it
    lost (the tokens ``o_at`` and ``r_at`` of each: see :func:`_read`); a merged name's parts are looked
    for in the whole original."""
    out: list[Reason] = []
    # a word the other text has as it stands is supported: the cheap test first (a near copy of a
    # long text shares all but a handful of its words)
    o_names = [t for _, t in _read(o_toks, o_at) if t.low not in sup_r.lows and _name_like(t, False) and not sup_r.has(t.low)]
    for i, t in _read(r_toks, r_at):
        if t.low in sup_o.lows:
            continue
        if t.number or t.low in STOP or t.low in DEMONYM or _date_kind(t, r_toks, i, lower) or sup_o.has(t.low):
            continue
        if not _name_like(t, lower):
            # A paraphrase brings its own common words; a summary of a long original should not need to.
            if len(t.low) >= 4 and (summary or zipf(t.low) < 3.5):
                out.append(Reason("content_invented", *_span(t), f"'{t.text}' is not in the original"))
            continue
        merged = _merged_from(t, o_toks)
        if merged is not None:
            a, b = merged
            out.append(Reason("name_merged", *_span(t), f"'{t.text}' merges the original's '{a.text} {b.text}'", a.start, b.end))
            continue
        close = max(o_names, key=lambda u: fuzz.ratio(t.low, u.low), default=None)
        if close is not None and fuzz.ratio(t.low, close.low) >= 75:
            if zipf(t.low) >= 3.0 and zipf(close.low) >= 3.0:
                out.append(Reason("entity_changed", *_span(t), f"'{close.text}' became '{t.text}'", *_span(close)))
            elif ctx.names.get(t.low, 0) >= 2:
                continue  # a spelling the source itself uses elsewhere (Zelensky / Zelenskyy)
            else:
                out.append(Reason("name_misspelt", *_span(t), f"'{close.text}' is misspelt as '{t.text}'", *_span(close)))
            continue
        out.append(Reason("entity_invented", *_span(t), f"'{t.text}' is named but not in the original"))
    if not summary:
        for t in o_names:
            if t.low in DEMONYM or t.low in _WEEKDAYS or t.low in _MONTHS:
                continue
            if process.extractOne(t.low, sup_r.lows, scorer=fuzz.ratio, score_cutoff=75) is not None:
                continue  # reported above as changed or misspelt
            out.append(Reason("entity_dropped", 0, 0, f"the original's '{t.text}' is left out", *_span(t)))
    return out


def _merged_from(t: Token, o_side: "_TokenView | _Sentences") -> tuple[Token, Token] | None:
    """Two neighbouring capitalised words of the original that this one token fuses ("Volodymyrzelsky")."""
    if len(t.low) < 7:
        return None
    ws, lows = o_side.words, o_side.lows
    for k in range(len(lows) - 1):  # a token is capitalised when its first character is
        if ws[k][0].isupper() and ws[k + 1][0].isupper() and fuzz.ratio(t.low, lows[k] + lows[k + 1]) >= 80 and t.low[:3] == lows[k][:3]:
            return o_side.token(k), o_side.token(k + 1)
    return None


def _numbers(o_toks, r_toks, sup_o, sup_r, lower, summary, o_at=None, r_at=None) -> list[Reason]:
    """Figures of the rewrite (its tokens ``r_at``) the original does not state, and the original's
    (``o_at``) it lost; a number beside a month is a day, left to :func:`_dates`."""
    def plain(toks, i, t):
        return t.number and _date_kind(t, toks, i, lower) is None

    new = [t for i, t in _read(r_toks, r_at) if plain(r_toks, i, t) and _number_value(t) not in sup_o.numbers]
    gone = [t for i, t in _read(o_toks, o_at) if plain(o_toks, i, t) and _number_value(t) not in sup_r.numbers]
    out = []
    for k, t in enumerate(new):
        if k < len(gone):
            out.append(Reason("number_changed", *_span(t), f"'{gone[k].text}' became '{t.text}'", *_span(gone[k])))
        else:
            out.append(Reason("number_invented", *_span(t), f"the figure '{t.text}' is not in the original"))
    if not summary:
        for t in gone[len(new):]:
            out.append(Reason("number_dropped", 0, 0, f"the original's figure '{t.text}' is left out", *_span(t)))
    return out


def _dates(o_toks, r_toks, lower, summary, o_at=None, r_at=None) -> list[Reason]:
    """Dates of the rewrite (its tokens ``r_at``) the original does not name, and the original's
    (``o_at``) it lost. When those are a part of each text (``o_toks`` and ``r_toks`` then being
    :class:`_Sentences`), the dates each whole text names are read only where a date of one part is
    not in the other part but its word is elsewhere in that text."""
    def items(toks, at=None):  # only a number or a date word can be a date (the cheap test first)
        return [(t, k) for i, t in _read(toks, at) if (t.number or t.low in _DATE_WORDS) and (k := _date_kind(t, toks, i, lower))]

    def unnamed(found, named):  # the dates of ``found`` whose value none of ``named`` has
        vals = {_date_value(t) for t, _ in named}
        return [(t, k) for t, k in found if _date_value(t) not in vals]

    o_items, r_items = items(o_toks, o_at), items(r_toks, r_at)
    new, gone = unnamed(r_items, o_items), unnamed(o_items, r_items)
    if o_at is not None and any(_may_name(o_toks.support, _date_value(t)) for t, _ in new):
        new = unnamed(new, items(o_toks.all_tokens))
    if r_at is not None and any(_may_name(r_toks.support, _date_value(t)) for t, _ in gone):
        gone = unnamed(gone, items(r_toks.all_tokens))
    out = []
    used = set()
    for t, k in new:
        match = next((g for g in gone if g[1] == k and id(g[0]) not in used), None)
        if match is not None:
            used.add(id(match[0]))
            out.append(Reason("date_changed", *_span(t), f"the {k} '{match[0].text}' became '{t.text}'", *_span(match[0])))
        else:
            out.append(Reason("date_invented", *_span(t), f"the {k} '{t.text}' is not in the original"))
    if not summary:
        for t, k in gone:
            if id(t) not in used:
                out.append(Reason("date_dropped", 0, 0, f"the original's {k} '{t.text}' is left out", *_span(t)))
    return out


def _may_name(support: "_Support", value: str) -> bool:
    """Whether a text that states ``support`` has a word that can be the date ``value`` (a figure, a
    month by any of its forms, a weekday or another date word): the cheap test before its tokens."""
    return value in support.lows or value in support.numbers or not support.lows.isdisjoint(_MONTH_FORMS.get(value, ()))


_MONTH_FORMS = {m: {low for low in _MONTHS if m.startswith(low)} for m in _MONTH_NAMES}  # "september": sep, sept, september


# Nouns for people and forces: a demonym on one of these says whose side they are on.
_PEOPLE = frozenset(
    """soldiers soldier troops forces army military personnel servicemen officials official president
    minister leader leaders government navy fighters separatists rebels people citizens police officers
    sailors pilots diplomats authorities media""".split()
)


def _sides(o_toks, r_toks) -> list[Reason]:
    """A demonym put on people or forces that the original does not give that side: "Russian soldiers on
    the border with Ukraine" -> "Ukrainian soldiers". A demonym for a stated country on a place ("the
    border with Ukraine" -> "the Ukrainian border") is a faithful paraphrase."""
    if not any(t.low in DEMONYM for t in r_toks):  # the cheap test: every finding is on a demonym of the rewrite
        return []

    def side(t: Token) -> str | None:  # "Ukrainian" and "Ukraine's" both name the side "ukraine"
        return _SIDE_OF.get(t.low)

    def on_people(toks: list[Token]) -> Counter:
        return Counter(side(t) for k, t in enumerate(toks) if side(t) and k + 1 < len(toks) and toks[k + 1].low in _PEOPLE)

    stated = {side(t) for t in o_toks} - {None}
    o_people, seen = on_people(o_toks), Counter()
    o_sides = [t for t in o_toks if side(t)]
    out = []
    for k, t in enumerate(r_toks):
        country = DEMONYM.get(t.low)
        if country is None:
            continue
        people = k + 1 < len(r_toks) and r_toks[k + 1].low in _PEOPLE
        if country not in stated and not (people and o_people):
            out.append(Reason("nationality_invented", *_span(t), f"'{t.text}' names a side the original does not mention"))
            continue
        if not people:
            continue
        seen[country] += 1
        if seen[country] > o_people.get(country, 0):
            src = next((u for u in o_sides if side(u) != country), None)
            who = f" (the original names '{src.text}' here)" if src else ""
            out.append(Reason("side_swapped", *_span(t), f"'{t.text} {r_toks[k + 1].text}': the original does not put them on that side{who}",
                              *(_span(src) if src else (None, None))))
    return out


def _counted_words(o_toks, r_toks, words: frozenset, kind: str, noun: str) -> list[Reason]:
    """Hedges or negations the original has and the rewrite lost (or gained)."""
    contracted = noun == "negation"

    def hits(toks: list[Token]) -> list[Token]:  # a capitalised "May" inside a sentence is the month
        return [t for t in toks if (t.low in words and not (t.cap and not t.initial)) or (contracted and t.low.endswith("n't"))]

    o_hits, r_hits = hits(o_toks), hits(r_toks)
    if len(o_hits) == len(r_hits):
        return []
    if len(o_hits) > len(r_hits):
        lost = _unmatched(o_hits, r_hits)
        return [Reason(kind, 0, 0, f"the original's {noun} '{t.text}' is gone: a possibility told as a fact" if noun == "hedge"
                       else f"the original's {noun} '{t.text}' is gone", *_span(t)) for t in lost[: len(o_hits) - len(r_hits)]]
    added = _unmatched(r_hits, o_hits)
    added_kind = "modality_added" if noun == "hedge" else kind
    return [Reason(added_kind, *_span(t), f"the {noun} '{t.text}' is not in the original") for t in added[: len(r_hits) - len(o_hits)]]


def _unmatched(hits: list[Token], others: list[Token]) -> list[Token]:
    """The tokens of ``hits`` left over once each is paired with a same-stem token of ``others``."""
    pool = Counter(_stem(t.low) for t in others)
    out = []
    for t in hits:
        if pool[_stem(t.low)] > 0:
            pool[_stem(t.low)] -= 1
        else:
            out.append(t)
    return out


_DETERMINERS = frozenset("the a an this that their his her its our first next last".split())


def _event_words(toks: list[Token]) -> list[Token]:
    """Verbs of the event classes; a word after a determiner is a noun ("the first meeting") and skipped."""
    return [t for k, t in enumerate(toks) if t.low in EVENT_CLASS and not (k and toks[k - 1].low in _DETERMINERS)]


def _events(o_toks, r_toks) -> list[Reason]:
    r_ev = _event_words(r_toks)
    if not r_ev:  # nothing gained: no event changed
        return []
    o_ev = _event_words(o_toks)
    o_count = Counter(EVENT_CLASS[t.low] for t in o_ev)
    r_count = Counter(EVENT_CLASS[t.low] for t in r_ev)
    lost = [c for c in o_count if o_count[c] > r_count.get(c, 0)]
    gained = [c for c in r_count if r_count[c] > o_count.get(c, 0)]
    out = []
    if lost and gained:
        src = next(t for t in o_ev if EVENT_CLASS[t.low] == lost[0])
        for c in gained:
            o_lows = {t.low for t in o_toks}
            new = [t for t in r_ev if EVENT_CLASS[t.low] == c and t.low not in o_lows]
            new = new or [t for t in r_ev if EVENT_CLASS[t.low] == c]
            out.append(Reason("event_changed", *_span(new[0]), f"'{src.text}' ({lost[0]}) became '{new[0].text}' ({c})", *_span(src)))
    return out


_QUOTE_SPANS = re.compile(r"‘([^‘’]*?[^\W_])’(?![^\W\d_])|“([^“”]+)”|\"([^\"]+)\"|(?<![\w])'(?=\w)([^']*?\w)'(?!\w)")


def quoted(text: str) -> list[tuple[int, int, str]]:
    """Spans inside quotation marks: (start, end, inner text), the marks included in the span.

    >>> [q[2] for q in quoted("He said ‘off the scale’ and “no”, Ukraine's 'big' day")]
    ['off the scale', 'no', 'big']
    """
    out = []
    for m in _QUOTE_SPANS.finditer(text):
        inner = next(g for g in m.groups() if g is not None)
        out.append((m.start(), m.end(), inner))
    return out


def _quotes(original: str, rewrite: str) -> list[Reason]:
    r_quotes = quoted(rewrite)
    if not r_quotes:  # every finding is on a quotation of the rewrite
        return []
    o_quotes = [(s, e, fold(q)) for s, e, q in quoted(original)]
    out = []
    o_fold = fold(original)
    for s, e, q in r_quotes:
        fq = fold(q)
        if not fq or fq in o_fold and any(fq == oq for _, _, oq in o_quotes):
            continue
        best = max(o_quotes, key=lambda x: fuzz.ratio(fq, x[2]), default=None)
        if best is not None and fuzz.ratio(fq, best[2]) >= 50:
            if fq != best[2]:
                out.append(Reason("quote_altered", s, e, "the words inside the quotation marks differ from the original's", best[0], best[1]))
        elif len(fq.split()) >= 3 and not _nearly_in(fq, o_fold):
            out.append(Reason("quote_altered", s, e, "quoted words that the original does not contain"))
    return out


def _nearly_in(needle: str, hay: str, cutoff: float = 90.0, anchor: int = 24) -> bool:
    """Whether ``fuzz.partial_ratio(needle, hay) >= cutoff``, the cheap tests first.

    partial_ratio is the best ``fuzz.ratio`` of ``needle`` against a stretch of ``hay``; for a needle
    longer than 64 characters rapidfuzz tries every stretch, a millisecond for a quotation against a
    whole document. Any one stretch as long as the needle gives a lower bound, so the answer is yes
    when the needle is in ``hay`` as it stands, or when the stretch where its start, end or middle
    stands scores ``cutoff`` already (a quotation of a near copy, a few words changed); only the rest
    pay for the search. The bound holds because rapidfuzz (its fuzz_py.py spells the search out)
    skips only stretches that a neighbouring one scores at least as well as; a test compares the
    answers on edited stretches of stories.

    >>> _nearly_in("the troops will be withdrawn by friday", "he said the troops will be withdrawn on friday night")
    True
    """
    if needle in hay:
        return True
    n, m = len(needle), len(hay)
    if n < m:  # a longer needle is partial_ratio's other way round: no stretch of hay to try
        for lo in (0, n - anchor, (n - anchor) // 2):
            p = hay.find(needle[lo : lo + anchor]) if lo >= 0 else -1
            if p >= 0:
                i = min(max(p - lo, 0), m - n)
                if fuzz.ratio(needle, hay[i : i + n]) >= cutoff:
                    return True
    return fuzz.partial_ratio(needle, hay) >= cutoff


_INFLECTIONS = ("s", "es", "d", "ed", "'s")


def _terms(o_side: "_TokenView | _Sentences", r_side: "_TokenView | _Sentences", ctx: Context) -> list[Reason]:
    """One word of a term the source uses more than once swapped for a shorter or longer form of it,
    its neighbours kept: "large landing ship" -> "large land ship". Read from each text's words and
    their lows; a finding's tokens are asked for by index."""
    out = []
    o_words, r_words, o_l, r_l = o_side.words, r_side.words, o_side.lows, r_side.lows
    if not o_l or not r_l:
        return out
    for op in Levenshtein.opcodes(o_l, r_l):
        if op.tag != "replace" or op.src_end - op.src_start != 1 or op.dest_end - op.dest_start != 1:
            continue
        i, j = op.src_start, op.dest_start
        if i == 0 or j == 0 or i + 1 >= len(o_l) or j + 1 >= len(r_l):
            continue
        if o_l[i - 1] != r_l[j - 1] or o_l[i + 1] != r_l[j + 1]:
            continue
        a, b = o_l[i], r_l[j]
        if a == b or o_words[i][0].isdigit() or o_words[i][0].isupper() or r_words[j][0].isupper() or a in STOP or b in STOP:
            continue  # names have detectors of their own (a token's number and cap: its first character)
        if not (a.startswith(b) or b.startswith(a)):
            continue
        if max(ctx.bigrams.get((o_l[i - 1], a), 0), ctx.bigrams.get((a, o_l[i + 1]), 0)) < 2:
            continue  # not a term the source repeats
        short, long_ = sorted((a, b), key=len)
        if long_[len(short):] in _INFLECTIONS or _variant(a) == _variant(b):
            continue
        out.append(Reason("term_corrupted", *_span(r_side.token(j)), f"'{o_words[i - 1]} {o_words[i]} {o_words[i + 1]}' became "
                          f"'{r_words[j - 1]} {r_words[j]} {r_words[j + 1]}'", *_span(o_side.token(i))))
    return out


_PLACE_PREP = frozenset(("in", "at"))


def _clause(side: "_TokenView | _Sentences", k: int) -> list[Token]:
    """The tokens of the clause that ends at token ``k`` (``k`` itself left out): back to the last
    comma or sentence end."""
    text, j = side.text, k
    while j > 0:
        gap = text[side.token(j - 1).end : side.token(j).start]
        if gap == ".":
            j -= 1  # inside an abbreviation: U.S.
            continue
        if any(ch in gap for ch in ",;.!?:("):
            break
        j -= 1
    return [side.token(i) for i in range(j, k)]


def _clause_names(clause: list[Token], place: Token) -> list[Token]:
    """Who a clause names: capitalised words, not dates, sides, single letters or the place itself."""
    return [
        t for t in clause
        if t.cap and not t.number and len(t.low) > 1 and t.low not in STOP and t.low not in DEMONYM
        and t.low not in _WEEKDAYS and t.low not in _MONTHS and t.low not in _SIDES
        and not _derived(t.low, place.low) and t.low != place.low
    ]


def _places(o_side: "_TokenView | _Sentences", r_side: "_TokenView | _Sentences", r_at: Iterable[int] | None = None) -> list[Reason]:
    """A place put with another person: "the Secretary of State said on Thursday in Stockholm" ->
    "President Joe Biden was seen in Stockholm". Reported when the rewrite's clause ending "in/at
    <Place>" names someone the original names only elsewhere, and the original's clause ending at that
    place names someone the rewrite names only elsewhere: the same people, attached the other way.
    ``r_at``: the rewrite's tokens that may be such a place, by index (default: all)."""
    o_l, o_w = o_side.lows, o_side.words
    o_at: dict[str, list[int]] = {}
    for k in range(1, len(o_l)):
        if o_l[k - 1] in _PLACE_PREP and o_w[k][0].isupper():  # a token is capitalised when its first character is
            o_at.setdefault(o_l[k], []).append(k)
    r_l, r_w = r_side.lows, r_side.words
    out = []
    for k in range(1, len(r_l)) if r_at is None else r_at:
        if k < 1 or r_l[k - 1] not in _PLACE_PREP or not r_w[k][0].isupper() or r_l[k] not in o_at:
            continue
        place = r_side.token(k)
        if place.low in _WEEKDAYS or place.low in _MONTHS:
            continue
        r_clause = _clause(r_side, k - 1)
        r_names = _clause_names(r_clause, place)
        if not r_names:
            continue
        o_clauses = [_clause(o_side, j - 1) for j in o_at[place.low]]
        o_clause_names = [_clause_names(c, place) for c in o_clauses]
        if not all(o_clause_names):
            continue  # the original says the place alone somewhere: nobody to compare with
        o_lows = {t.low for c in o_clause_names for t in c}
        if any(t.low in o_lows for t in r_names):
            continue
        in_o_clauses = {t.start for c in o_clauses for t in c}
        o_elsewhere = {t.low for t in o_side.all_tokens if t.cap and t.start not in in_o_clauses}
        in_r_clause = {t.start for t in r_clause}
        r_elsewhere = {t.low for t in r_side.all_tokens if t.cap and not t.initial and t.start not in in_r_clause}
        if not (any(t.low in o_elsewhere for t in r_names) and o_lows & r_elsewhere):
            continue  # not the same people attached the other way: new matter, judged by other detectors
        who = " ".join(t.text for t in r_names)
        first = o_clause_names[0]
        out.append(Reason("relation_changed", r_names[0].start, place.end,
                          f"'{who}' is put in {place.text}; the original puts '{' '.join(t.text for t in first)}' there",
                          first[0].start, o_side.token(o_at[place.low][0]).end))
    return out


_MARKS = r"\((L|R|C|C?L|left|right|centre|center|top|bottom|front|back)\)"
_MARKER = re.compile(r"([^\W\d_][\w’'-]*)\s*" + _MARKS, re.I)
_MARK = re.compile(_MARKS, re.I)  # the marker alone: what every _MARKER match holds


def _markers(original: str, rewrite: str) -> list[Reason]:
    """A photo caption's position marker "(L)" put on another name than in the original."""
    if "(" not in rewrite or "(" not in original:  # the cheap check: a marker needs a parenthesis on both sides
        return []
    if not _MARK.search(rewrite) or not _MARK.search(original):  # and a marker in it (a scan from each "(" only)
        return []
    o_marks: dict[str, list[re.Match]] = {}
    for m in _MARKER.finditer(original):
        o_marks.setdefault(m.group(2).lower(), []).append(m)
    out = []
    for m in _MARKER.finditer(rewrite):
        olds = o_marks.get(m.group(2).lower())
        if not olds or any(o.group(1).lower() == m.group(1).lower() for o in olds):
            continue
        o = olds[0]
        out.append(Reason("relation_changed", m.start(), m.end(),
                          f"'({m.group(2)})' marks '{m.group(1)}' here but '{o.group(1)}' in the original", o.start(), o.end()))
    return out


# ---------------------------------------------------------------------------------------------
# unpaired detectors
# ---------------------------------------------------------------------------------------------


def unpaired_reasons(text: str, context: Context | None = None, toks: list[Token] | None = None) -> list[Reason]:
    """Intrinsic findings about ``text``, with ``context`` holding the names the document uses."""
    toks = tokens(text) if toks is None else toks
    ctx = context or Context()
    reasons: list[Reason] = []
    reasons += _merged_names(toks, ctx)
    reasons += _name_variants(toks, ctx)
    reasons += _doubled(text, toks)
    reasons += _unbalanced_quotes(text)
    reasons += _role_parentheses(text)
    return reasons


def may_need_tokens(ws: list[str], ctx: Context, caps: list[str] | None = None) -> bool:
    """Whether a token-reading unpaired detector (:func:`_merged_names`, :func:`_name_variants`,
    :func:`_doubled`) could find anything in a passage of words ``ws`` (:func:`words`), without
    tokens: the first two are asked their decision for each capitalised word, and for
    :func:`_doubled` the conditions a repeat starts from are tested. False means all three find nothing.

    >>> ctx = Context.from_texts(["Volodymyr Zelensky spoke."])
    >>> may_need_tokens(words("Volodymyrzelsky spoke to reporters."), ctx), may_need_tokens(words("He spoke to reporters."), ctx)
    (True, False)
    """
    # _doubled: a repeat is the same run of n = 1, 2 or 3 token texts twice (its spans are compared
    # as text), not starting with a number; a single word must not be a stop word or a repeatable one
    for n in (1, 2, 3):
        if not any(map(eq, ws, ws[n:])):  # C-level: most passages repeat nothing
            continue
        for i in compress(count(), map(eq, ws, ws[n:])):  # the positions where the word comes back n on
            w = ws[i]
            if w[0].isdigit() or ws[i : i + n] != ws[i + n : i + 2 * n]:
                continue
            if n > 1:
                return True
            low = low_of(w)
            if len(low) >= 2 and low not in STOP and low not in _REPEATABLE:
                return True
    # _merged_names and _name_variants decide each capitalised word from its low alone: asked here
    # of every one (caps: made already), they say exactly whether either finds something
    return any(map(ctx.name_finding, filterfalse(never_a_name_finding, set(capitals(ws) if caps is None else caps))))


def _merged_names(toks: list[Token], ctx: Context) -> list[Reason]:
    """A capitalised word no dictionary knows that is two name parts the document writes side by side,
    glued ("Volodymyr Zelenskyy" -> "Volodymyrzelsky")."""
    out = []
    for t in toks:
        if t.cap and not t.number and (parts := _merged_parts(t.low, ctx)) is not None:
            head, other = parts
            out.append(Reason("name_merged", *_span(t), f"'{t.text}' looks like '{head.title()}' and '{other.title()}' run together"))
    return out


@lru_cache(maxsize=1 << 17)
def never_a_name_finding(low: str) -> bool:
    """Whether the capitalised word ``low`` is one that neither :func:`_merged_parts` nor
    :func:`_usual_spelling` can find anything in, whatever the document: their first tests, which
    read the word alone (most capitalised words are common words or short names). Cached for the
    run, so that a document asks its context only of the words left."""
    return not _may_be_merged(low) and not _may_be_variant(low)


def _may_be_merged(low: str) -> bool:
    """:func:`_merged_parts`'s test of the word alone: long, unknown as a word, no apostrophe."""
    return len(low) >= 8 and "'" not in low and zipf(low) == 0


def _may_be_variant(low: str) -> bool:
    """:func:`_usual_spelling`'s test of the word alone: five letters or more, rare as a word."""
    return len(low) >= 5 and zipf(low) < 1.0


def _merged_parts(low: str, ctx: Context) -> tuple[str, str] | None:
    """The head and the name after it that the capitalised word ``low`` glues together, if any: what
    :func:`_merged_names` decides for one word (from its ``low`` alone, so a screen can ask it)."""
    if not _may_be_merged(low):
        return None
    for k in range(3, len(low) - 2):
        head, tail = low[:k], low[k:]
        if ctx.names.get(head, 0) == 0 or zipf(head) > 4.5:
            continue
        # the tail must match a name the document writes right after the head ("Volodymyr Zelensky")
        after = [n for n in ctx.followers.get(head, ()) if n != low and len(n) >= 4] if ctx.bigrams else ctx.long_names
        other = max(after, key=lambda n: fuzz.ratio(tail, n), default=None)
        if other is not None and fuzz.ratio(tail, other) >= 75:
            return head, other
    return None


def _name_variants(toks: list[Token], ctx: Context) -> list[Reason]:
    """A one-off spelling of a name that the document spells otherwise, more often ("Raznikov" / "Reznikov").
    The usual spelling must itself be a name (rare as a word): a typo of a common word is left alone."""
    out = []
    for t in toks:
        if t.cap and not t.number and (usual := _usual_spelling(t.low, ctx)) is not None:
            n, c = usual
            out.append(Reason("name_variant", *_span(t), f"'{t.text}' appears once; the document spells it '{n.title()}' ({c} times)"))
    return out


def _usual_spelling(low: str, ctx: Context) -> tuple[str, int] | None:
    """The spelling (and its count) that the document uses for the capitalised word ``low`` when
    ``low`` is a one-off variant of it: what :func:`_name_variants` decides for one word."""
    if not _may_be_variant(low) or ctx.names.get(low, 0) > 1:
        return None
    for n, c in ctx.names_by_initial.get(low[0], ()):
        if n == low or c < 2 or abs(len(n) - len(low)) > 1:
            continue
        if n.startswith(low) or low.startswith(n) or zipf(n) < zipf(low) or zipf(n) >= 3.5:
            continue  # an ending, or a common word (a typo of "Wednesday" changes no fact)
        if Levenshtein.distance(n, low) <= (1 if len(n) < 7 else 2):
            return n, c
    return None


def _doubled(text: str, toks: list[Token]) -> list[Reason]:
    """The same content word or short phrase twice in a row ("Germany, Germany", "100-battalion battalion")."""
    out = []
    lows = [t.low for t in toks]
    n_tok = len(toks)
    # only a position whose word comes back 1, 2 or 3 words on can start a repeat: those are found by
    # three zips, and the walk below (which skips past each repeat it reports) visits only them
    starts = sorted({i for n in (1, 2, 3) for i in compress(count(), map(eq, lows, lows[n:]))})
    resume = 0
    for i in starts:
        if i < resume:
            continue
        for n in (3, 2, 1):
            if i + 2 * n > n_tok or lows[i] != lows[i + n] or lows[i : i + n] != lows[i + n : i + 2 * n]:
                continue
            a0, a1, b0, b1 = toks[i], toks[i + n - 1], toks[i + n], toks[i + 2 * n - 1]
            gap = text[a1.end : b0.start]
            if gap not in _DOUBLE_GAPS or not _plain_run(text, toks, i, i + 2 * n):
                continue
            if a0.number or text[a0.start : a1.end] != text[b0.start : b1.end]:
                continue  # a table row; "new New" is a headline's case, not a doubled word
            if n == 1 and (a0.low in _REPEATABLE or a0.low in STOP or len(a0.low) < 2 or (a0.cap and gap == " ")):
                continue  # "very, very"; "the the" is a typo that changes no fact; "Boutros Boutros-Ghali"
            out.append(Reason("doubled_words", a0.start, b1.end, f"'{text[a0.start:a1.end]}' is written twice in a row"))
            resume = i + 2 * n
            break
    return out


_DOUBLE_GAPS = frozenset({" ", ", "})  # "lose-lose", "Chi-Chi's" are words of their own


def _plain_run(text: str, toks: list[Token], i: int, j: int) -> bool:
    """Whether tokens i..j-1 are separated only by single spaces or commas (no sentence end, no line
    break, no table spacing)."""
    return all(text[toks[k].end : toks[k + 1].start] in _DOUBLE_GAPS for k in range(i, j - 1))


_ATTRIBUTION = re.compile(r"\b(said|says|explained|stated|added|told|posted|noted|wrote|according to)\b", re.I)
_SENTENCE_END = re.compile(r"[.!?][”’\"]?\s+")


def _unbalanced_quotes(text: str) -> list[Reason]:
    """An opening quote that never closes, when it cannot be the news convention of a quotation that
    runs on into the next paragraph: it opens mid-sentence, or the passage goes on to attribute it."""
    if "‘" not in text and "“" not in text:  # the cheap check: nothing opens
        return []
    opens: list[tuple[int, str]] = []
    pairs = {"‘": "’", "“": "”"}
    for i, ch in enumerate(text):
        if ch in pairs:
            opens.append((i, ch))
        elif ch in "’”":
            if ch == "’" and i > 0 and _is_word(text[i - 1]):
                if i + 1 < len(text) and _is_word(text[i + 1]) and _apostrophe_inside_word(text, i):
                    continue  # don’t, Russia’s
                if _possessive_or_elided(text, i) and not (opens and opens[-1][1] == "‘"):
                    continue  # troops’ closes nothing unless a ‘ is open
            if opens and pairs[opens[-1][1]] == ch:
                opens.pop()
            elif opens:
                opens.pop()  # a mismatched closer still closes
    out = []
    for pos, ch in opens:
        before = text[:pos].rstrip()
        mid_sentence = bool(before) and before[-1] not in ".!?:," and not before.endswith(("said", "says"))
        rest = text[pos + 1 :]
        later = _SENTENCE_END.split(rest, maxsplit=1)
        attributed = len(later) > 1 and bool(_ATTRIBUTION.search(later[1]))
        if mid_sentence or attributed:
            why = "it opens mid-sentence" if mid_sentence else "the passage goes on to say who said it"
            out.append(Reason("quote_unbalanced", pos, pos + 1, f"the quotation opened here is never closed, and {why}"))
    return out


def _is_word(ch: str) -> bool:
    return ch.isalnum()


_PAREN = re.compile(r"((?:[A-Z][\w’'-]+\s+){0,2}[A-Z][\w’'-]+)\s*\(([^()]{3,80})\)")
_PERSON = re.compile(r"\b([A-Z][a-z’'-]+(?:\s+[A-Z][a-z’'-]+)+)\b")


_NOT_IN_NAME_RUN = re.compile(r"[^\w’'\-\s]")  # what the words and spaces before "(" in _PAREN cannot hold


def _paren_matches(text: str) -> list[re.Match]:
    """``_PAREN.finditer(text)``, found from each "(" instead of tried at every capital of the text.

    Before its "(", a match holds only word characters, ’ ' - and spaces, so it starts inside the
    run of those that ends at the "(" (after the last other character, which a search starting
    there cannot cross), and it holds one "(" only: each "(" is searched for from the start of its
    run, and a match for a later "(" is left to that one.

    >>> [m.group(1) for m in _paren_matches("Mr. Dmytro Kuleba (Foreign Minister), then (x) Biden (USA)")]
    ['Dmytro Kuleba', 'Biden']
    """
    out = []
    lo = 0  # just after the previous "(": nothing before it can belong to this one's match
    p = text.find("(")
    while p >= 0:
        run = lo
        for other in _NOT_IN_NAME_RUN.finditer(text, lo, p):
            run = other.end()
        m = _PAREN.search(text, run, p + 82)  # ( + at most 80 inside + ): nothing further can match
        if m is not None and m.start(2) == p + 1:
            out.append(m)
        lo = p + 1
        p = text.find("(", lo)
    return out


def _role_parentheses(text: str) -> list[Reason]:
    """``Name (Role Other Name)``: the parenthesis gives the person another person's title."""
    if "(" not in text:  # the cheap check before a regex that backtracks over every capital
        return []
    out = []
    for m in _paren_matches(text):
        outside, inside = m.group(1), m.group(2)
        words = [w.lower() for w in re.findall(r"[A-Za-z]+", inside)]
        if not any(w in _ROLES for w in words):
            continue
        outside_words = {w.lower() for w in outside.split()}
        for p in _PERSON.finditer(inside):
            parts = [w for w in p.group(1).split() if w.lower() not in _ROLES and w.lower() not in DEMONYM]
            if len(parts) >= 2 and not outside_words & {w.lower() for w in parts}:
                out.append(Reason("role_in_parenthesis", m.start(), m.end(),
                                  f"'{outside}' is given the role of another person, '{' '.join(parts)}'"))
                break
    return out


# ---------------------------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------------------------


def score_pair(original: str, rewrite: str, *, context: Context | Iterable[str] | None = None,
               threshold: float = 0.5, min_words: int = 3, unpaired: bool = True, calibration: dict | None = None,
               o_toks: list[Token] | None = None, r_toks: list[Token] | None = None) -> Verdict:
    """Score ``rewrite`` as a copy of ``original`` (both plain strings; spans index them; their
    :func:`tokens` may be given when already made).

    ``context`` is the rest of the document (texts, or a :class:`Context`): names it spells as the
    rewrite does are no misspelling. With ``unpaired`` the intrinsic detectors run on the rewrite too.

    >>> v = score_pair("They will speak by phone on Tuesday", "The two will meet by phone Tuesday")
    >>> v.label, [r.type for r in v.reasons]
    ('garbled', ['event_changed'])
    >>> score_pair("Ukraine's flag flies as President Zelensky salutes the troops in Kharkiv on Monday",
    ...            "As President Zelensky salutes Kharkiv’s troops on Monday, the flag of Ukraine flies.").label
    'faithful'
    """
    o_toks = tokens(original) if o_toks is None else o_toks
    r_toks = tokens(rewrite) if r_toks is None else r_toks
    ctx = _as_context(context, o_toks)
    reasons = paired_reasons(original, rewrite, ctx, o_toks=o_toks, r_toks=r_toks)
    if unpaired:
        reasons += unpaired_reasons(rewrite, ctx, r_toks)
    n_o, n_r = len(o_toks), len(r_toks)
    return verdict(reasons, threshold=threshold, mode="paired", words=n_r, min_words=min_words,
                   regime=regime_of(n_o, n_r), calibration=calibration)


def score_near_copy(original: str, rewrite: str, *, threshold: float = 0.5, min_words: int = 3,
                    calibration: dict | None = None) -> Verdict:
    """``score_pair(original, rewrite, unpaired=False)`` for a document against the copy of it that
    its cluster kept: where both are long versions of one text, only the sentences they do not
    share are read (:func:`near_copy_reasons`); any other pair goes to :func:`score_pair`.

    >>> kept = " ".join(f"Officials met on day {i} to discuss the plan for the region." for i in range(20))
    >>> copy = kept.replace("day 3 to discuss", "day 3 to never discuss")
    >>> [r.type for r in score_near_copy(kept, copy).reasons]
    ['negation_flipped']
    """
    o, r = _Sentences(original), _Sentences(rewrite)
    n_o, n_r = len(o.words), len(r.words)
    if original == rewrite or not n_r or n_o <= _LONG_TEXT or regime_of(n_o, n_r) == "summary":
        return score_pair(original, rewrite, threshold=threshold, min_words=min_words, unpaired=False, calibration=calibration)
    ctx = Context.from_capitals([capitals(o.words)], [original])  # the original's names, as score_pair's context
    return verdict(near_copy_reasons(o, r, ctx), threshold=threshold, mode="paired", words=n_r, min_words=min_words,
                   regime="paraphrase", calibration=calibration)


def regime_of(original_words: int, rewrite_words: int) -> str:
    """``summary`` when the original is more than three times the rewrite's length, else ``paraphrase``."""
    return "summary" if original_words > 3 * max(1, rewrite_words) else "paraphrase"


def score_text(text: str, *, context: Context | Iterable[str] | None = None, threshold: float = 0.5,
               min_words: int = 3, extra_reasons: Iterable[Reason] = (), calibration: dict | None = None,
               toks: list[Token] | None = None, ws: list[str] | None = None, caps: list[str] | None = None) -> Verdict:
    """Score one passage with no original: intrinsic signals, ``context`` being its document.

    Given the passage's :func:`words` ``ws`` and a :class:`Context`, a cheap check comes first: when
    no token-reading detector can find anything (:func:`may_need_tokens`), the verdict is made from
    the detectors that read the text alone, without tokens (most passages; the same verdict).
    ``caps``, the passage's :func:`capitals`, may come too when already made.

    >>> score_text("Biden spoke with leaders from France, Germany, Germany, Italy and the UK.").reasons[0].type
    'doubled_words'
    """
    extra_reasons = list(extra_reasons)
    if toks is None and ws is not None and isinstance(context, Context) and not may_need_tokens(ws, context, caps):
        return text_read_verdict(text, len(ws), threshold=threshold, min_words=min_words, extra_reasons=extra_reasons,
                                 calibration=calibration)
    toks = tokens(text) if toks is None else toks
    ctx = _as_context(context, toks)
    reasons = unpaired_reasons(text, ctx, toks) + list(extra_reasons)
    return verdict(reasons, threshold=threshold, mode="unpaired", words=len(toks), min_words=min_words,
                   calibration=calibration)


def text_read_verdict(text: str, n_words: int, *, threshold: float = 0.5, min_words: int = 3,
                      extra_reasons: list[Reason] = (), calibration: dict | None = None) -> Verdict:
    """The unpaired verdict of a passage of ``n_words`` words in which the token-reading detectors
    find nothing (:func:`may_need_tokens` says no): what is left reads the text alone."""
    reasons = _unbalanced_quotes(text) + _role_parentheses(text) + list(extra_reasons)
    if not reasons and calibration is None:
        return _no_findings(threshold, n_words < min_words)
    return verdict(reasons, threshold=threshold, mode="unpaired", words=n_words, min_words=min_words, calibration=calibration)


@lru_cache(maxsize=64)
def _no_findings(threshold: float, too_short: bool) -> Verdict:
    """The unpaired verdict of a passage with no reasons (the shipped calibration): one per threshold."""
    return verdict((), threshold=threshold, mode="unpaired", words=0 if too_short else 1, min_words=1)


def scorer(s1: str, s2: str, *, processor=None, score_cutoff: float | None = None) -> float:
    """Garble score (0-1) of ``s2`` as a copy of ``s1``, in rapidfuzz's scorer shape, so it serves as
    ``scorer=`` of ``rapidfuzz.process.extract``; scores below ``score_cutoff`` come back as 0.

    >>> round(scorer("Russian soldiers on the border with Ukraine", "Ukrainian soldiers at Ukraine's border"), 2) >= 0.5
    True
    """
    if processor is not None:
        s1, s2 = processor(s1), processor(s2)
    s = score_pair(s1, s2).score
    return s if score_cutoff is None or s >= score_cutoff else 0.0


def _as_context(context, own: list[Token]) -> Context:
    """``context`` as a :class:`Context`: given, or made from its texts plus the tokens of the text
    itself (``own``: already made, so not made again)."""
    if isinstance(context, Context):
        return context
    return Context.from_tokens([tokens(text or "") for text in context or ()] + [own])
