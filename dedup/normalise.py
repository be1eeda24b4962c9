"""Stage 1, normalise: repair encoding damage, quotes and whitespace, and keep a map back to the raw text.

Each fixer is a pure ``str -> str`` function in the ordered registry :data:`FIXERS`; its name is the
config value (``normalise.fixers``) and the word that appears in every recorded change. A text is
repaired in paragraph units; after each fixer that changed a unit, a character diff (rapidfuzz
opcodes) turns the change into records with raw offsets and updates the unit's boundary map, so every
position in the normalised text maps back to a position in the raw text.
"""

from __future__ import annotations

import re
import sys
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field

import ftfy
import ftfy.fixes
import numpy as np
import polars as pl
from rapidfuzz.distance import Levenshtein

from . import schema as S
from .columns import lists, struct_lists
from .config import NormaliseConfig

# ---------------------------------------------------------------------------------------------
# ftfy: mojibake, HTML entities, control characters
# ---------------------------------------------------------------------------------------------

# Curly quotes are correct text: ftfy's uncurl_quotes is off so that "Ukraine’s" stays as it is.
FTFY_CONFIG = ftfy.TextFixerConfig(uncurl_quotes=False, explain=True)


def _plain_ascii(text: str) -> bool:
    """ASCII with no control character but tab and line feed (string methods, not a regex scan:
    four times faster on Reuters, where every text is ASCII)."""
    return text.isascii() and text.replace("\n", "").replace("\t", "").isprintable()


def ftfy_can_act(text: str) -> bool:
    r"""The cheap check: whether the text has anything ftfy could change (a non-ASCII character, a
    control character other than tab and line feed, or an ``&`` that may start an entity).

    >>> ftfy_can_act("plain\tASCII\n"), ftfy_can_act("AT&amp;T"), ftfy_can_act("caf\u00e9"), ftfy_can_act("a\rb")
    (False, True, True, True)
    """
    return "&" in text or not _plain_ascii(text)


def ftfy_fix_and_detail(text: str) -> tuple[str, str]:
    """ftfy's fix with the names of the steps that changed the text ("unescape_html, ...").

    Plain ASCII without an ``&`` is what :func:`ftfy_can_act` rules out. In plain ASCII the only
    thing ftfy can change is an HTML entity (every other step needs a non-ASCII or a control
    character), and it leaves entities alone where a ``<`` says the text is HTML. So such text gets
    ftfy's own ``unescape_html`` alone, and when the result is plain ASCII with no ``&`` left
    (nothing for a second round), that is ftfy's answer; anything else (``&eacute;``, ``&amp;lt;``)
    goes through ftfy whole. Reuters' texts are all ASCII with an ``&``: this takes ftfy from most
    of the normaliser's time to a small part of it.
    """
    if not _plain_ascii(text):
        return _ftfy_explained(text)
    if "&" not in text or "<" in text:  # nothing for ftfy to change, or entities it leaves alone
        return text, ""
    fixed = ftfy.fixes.unescape_html(text)
    if fixed == text:
        return text, ""
    if "&" not in fixed and _plain_ascii(fixed):
        return fixed, "unescape_html"
    return _ftfy_explained(text)


def _ftfy_explained(text: str) -> tuple[str, str]:
    """ftfy's ``fix_and_explain`` in full, its steps named."""
    fixed, steps = ftfy.fix_and_explain(text, FTFY_CONFIG)
    names: list[str] = []
    for action, arg in steps or []:
        if action == "apply":
            names.append(arg)
        elif action == "encode":
            names.append(f"decode {arg}")
        elif action == "decode" and names and names[-1].startswith("decode "):
            names[-1] += f" as {arg}"
        else:
            names.append(f"{action} {arg}")
    return fixed, ", ".join(dict.fromkeys(names))


def fix_ftfy(text: str) -> str:
    """Fix mojibake, HTML entities and control characters with ftfy (curly quotes left alone).

    >>> fix_ftfy("Ukraineâ€™s build-up &amp; more")
    'Ukraine’s build-up & more'
    >>> fix_ftfy("plain ASCII is returned as it is")
    'plain ASCII is returned as it is'
    """
    return ftfy_fix_and_detail(text)[0]


# ---------------------------------------------------------------------------------------------
# quotes: glued, stray and mismatched curly quotes (what ftfy does not do)
# ---------------------------------------------------------------------------------------------

# What may follow an apostrophe inside a word: don’t, Ukraine’s, they’re, I’ve, we’ll, he’d, I’m.
_CONTRACTION = re.compile(r"(?:s|t|re|ve|ll|d|m|n)(?![^\W\d_])", re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]")


def _is_letter(ch: str) -> bool:
    return bool(ch) and bool(_LETTER.match(ch))


def _apostrophe_inside_word(text: str, i: int) -> bool:
    """Whether the ’ at ``i``, between two letters, is an apostrophe (don’t, O’Brien, Ukraine’s)."""
    if _CONTRACTION.match(text, i + 1):
        return True
    start = i
    while start > 0 and _is_letter(text[start - 1]):
        start -= 1
    return i - start == 1 and text[start].isupper()  # O’Brien, D’Amato, L’Oréal


def fix_quotes(text: str) -> str:
    """Repair curly quotes that are glued to a word, stray, or closed by the wrong mark.

    Correct text is left alone: apostrophes (Ukraine’s, don’t, ’90s, troops’) and matched pairs.

    >>> fix_quotes("by imposing’substantial’ economic sanctions")
    'by imposing ‘substantial’ economic sanctions'
    >>> fix_quotes("the U.S. had’made it very clear to the Kremlin’ that")
    'the U.S. had ‘made it very clear to the Kremlin’ that'
    >>> fix_quotes("“If the new sanctions from Hell’ arrive, we will reply.”")
    '“If the new sanctions from Hell arrive, we will reply.”'
    >>> fix_quotes("Ukraine’s troops’ ‘joint action’ in the ’90s, don’t")
    'Ukraine’s troops’ ‘joint action’ in the ’90s, don’t'
    >>> fix_quotes("he said ‘no way” and left")
    'he said ‘no way’ and left'
    """
    if not any(q in text for q in "‘’“”"):
        return text
    out: list[str] = []
    single_open = False  # an unclosed ‘ so far
    double_open = False  # an unclosed “ so far
    low_open = False  # an unclosed „ so far
    n = len(text)
    for i, ch in enumerate(text):
        prev = text[i - 1] if i else ""
        nxt = text[i + 1] if i + 1 < n else ""
        if ch == "‘":
            if _is_letter(prev) and _is_letter(nxt):
                if _CONTRACTION.match(text, i + 1):  # a mis-curled apostrophe: don‘t
                    out.append("’")
                    continue
                out.append(" ‘")  # glued opener: said‘hello’
            else:
                out.append(ch)
            single_open = True
        elif ch == "’":
            if _is_letter(prev) and _is_letter(nxt):
                if _apostrophe_inside_word(text, i):
                    out.append(ch)
                elif single_open:  # glued closer: ‘substantial’economic
                    out.append("’ ")
                    single_open = False
                elif _closer_ahead(text, i + 1):  # glued opener: imposing’substantial’
                    out.append(" ‘")
                    single_open = True
                else:
                    out.append(ch)
            elif single_open and not _is_letter(nxt):
                out.append(ch)  # closes the open ‘ (also after a plural: ‘the troops’)
                single_open = False
            elif _is_letter(prev) and not _is_letter(nxt) and not _possessive_or_elided(text, i):
                # a closing mark with nothing open: stray, or closing an open “ with the wrong mark
                if double_open and "”" not in text[i + 1 :]:
                    out.append("”")
                    double_open = False
                else:
                    out.append("")
            else:
                out.append(ch)
        elif ch == "„":
            out.append(ch)
            low_open = True
        elif ch == "“":
            if low_open:  # „…“ (German, Polish, Czech…): here “ closes
                out.append(ch)
                low_open = False
            else:
                out.append(" “" if _is_letter(prev) else ch)
                double_open = True
        elif ch == "”":
            if not double_open and single_open:
                out.append("’")  # ‘no way” -> ‘no way’
                single_open = False
            else:
                out.append("” " if _is_letter(nxt) else ch)
                double_open = False
        else:
            out.append(ch)
    return "".join(out)


def _closer_ahead(text: str, start: int) -> bool:
    """Whether a closing ’ (after a letter, before a non-letter) follows within the next 300 characters."""
    end = min(len(text), start + 300)
    for j in range(start, end):
        if text[j] == "’" and _is_letter(text[j - 1]) and not _is_letter(text[j + 1] if j + 1 < len(text) else ""):
            return True
    return False


def _possessive_or_elided(text: str, i: int) -> bool:
    """troops’ (plural possessive) and goin’ (dropped g) end with a ’ that closes nothing."""
    return text[i - 1] in "sS" or text[max(0, i - 2) : i].lower() == "in"


# ---------------------------------------------------------------------------------------------
# whitespace: non-breaking and runaway spaces, trailing blanks
# ---------------------------------------------------------------------------------------------

_SPACES = re.compile(r"[\u00a0\u2000-\u200a\u202f\u205f\u3000\t]")
_INVISIBLE = re.compile(r"[\u200b\u2060\ufeff]")  # zero-width space, word joiner, stray BOM
_RUN = re.compile(r"  +")  # a run of spaces; collapsed only between two non-spaces (see _collapse)
_TRAILING = re.compile(r"[ ]+$", re.MULTILINE)


def fix_whitespace(text: str) -> str:
    """Turn odd spaces into plain ones, collapse runs inside a line, strip line ends.

    Leading indentation is kept (it marks paragraphs in wire copy); line breaks are kept.

    >>> fix_whitespace("warn Putin of\\u00a0severe  consequences.\\u00a0 \\u00a0")
    'warn Putin of severe consequences.'
    >>> fix_whitespace("    Indented first line\\nsecond")
    '    Indented first line\\nsecond'
    """
    if text.isascii():  # of the odd spaces and invisible marks, ASCII holds only the tab
        text = text.replace("\t", " ")
    else:
        text = _INVISIBLE.sub("", _SPACES.sub(" ", text))
    if "  " in text:  # the substring tests are cheap; the regex scans are not
        text = _collapse(text)
    return _TRAILING.sub("", text) if " \n" in text or text.endswith(" ") else text


def _collapse(text: str) -> str:
    """Runs of spaces inside a line as one space; leading indentation and trailing runs left (the
    regex ``(?<=\\S) {2,}(?=\\S)``, three times faster: a pattern that starts with a literal is found
    by a fast search, one with a look-behind is tried at every position)."""
    n = len(text)

    def one(m: re.Match) -> str:
        s, e = m.span()
        return " " if s and e < n and not text[s - 1].isspace() and not text[e].isspace() else m.group()

    return _RUN.sub(one, text)


FIXERS: dict[str, Callable[[str], str]] = {
    "ftfy": fix_ftfy,
    "quotes": fix_quotes,
    "whitespace": fix_whitespace,
}
# Fixers that can also say which of their own steps acted (used for the change records).
_WITH_DETAIL: dict[str, Callable[[str], tuple[str, str]]] = {"ftfy": ftfy_fix_and_detail}


# ---------------------------------------------------------------------------------------------
# applying the fixers, with change records and the offset map
# ---------------------------------------------------------------------------------------------

CHANGE_DTYPE = pl.Struct(
    {
        "fixer": pl.String,
        "detail": pl.String,
        "raw_start": pl.Int64,
        "raw_end": pl.Int64,
        "before": pl.String,
        "after": pl.String,
    }
)


@dataclass
class Normalised:
    """The result for one text: the repaired text, its changes and its offset map."""

    text: str
    changes: list[dict] = field(default_factory=list)
    anchor_norm: list[int] = field(default_factory=lambda: [0])
    anchor_raw: list[int] = field(default_factory=lambda: [0])

    @property
    def fixes(self) -> list[str]:
        return sorted({c["fixer"] for c in self.changes})

    def to_raw(self, positions):
        """Map positions in the normalised text to positions in the raw text."""
        return map_offsets(self.anchor_norm, self.anchor_raw, positions)


def map_offsets(anchor_norm, anchor_raw, positions):
    """Map normalised positions to raw ones with the anchors of :func:`normalise_text`.

    Between two anchors, positions advance one to one. Works on scalars and arrays.
    """
    an = np.asarray(anchor_norm, dtype=np.int64)
    ar = np.asarray(anchor_raw, dtype=np.int64)
    pos = np.asarray(positions, dtype=np.int64)
    k = np.searchsorted(an, pos, side="right") - 1
    k = np.clip(k, 0, len(an) - 1)
    out = ar[k] + (pos - an[k])
    return out if out.ndim else int(out)


def map_offsets_list(anchor_norm, anchor_raw, positions: list[int]) -> list[int]:
    """:func:`map_offsets` of a list of positions, as a list of ints, the anchors being lists (as
    polars gives them). A document's passages ask for a handful at a time, which numpy's fixed cost
    per call (about 12 µs: four arrays made, a search, a clip) made a quarter of the segment stage on
    one-paragraph documents; so a few positions, or any number when there is one anchor (the
    normaliser shifted nothing, or everything alike), are mapped in Python, the same way (a test
    compares the two).

    >>> map_offsets_list([0, 5], [0, 7], [0, 4, 5, 9]), map_offsets_list([0], [2], [0, 3])
    ([0, 4, 7, 11], [2, 5])
    """
    if len(anchor_norm) == 1:
        shift = anchor_raw[0] - anchor_norm[0]
        return [p + shift for p in positions]
    if len(positions) > _FEW_POSITIONS:
        return map_offsets(anchor_norm, anchor_raw, positions).tolist()
    out = []
    for p in positions:
        k = max(bisect_right(anchor_norm, p) - 1, 0)  # searchsorted(side="right") - 1, clipped
        out.append(anchor_raw[k] + (p - anchor_norm[k]))
    return out


_FEW_POSITIONS = 64  # beyond this many, numpy's vectorised search pays for its fixed cost


MAX_PASSES = 4
_UNIT_BREAK = re.compile(r"\n[ \t\u00a0]*\n")


def _units(text: str, max_chars: int) -> list[tuple[int, int]]:
    """Cut ``text`` into paragraph units (each keeps its trailing break), none over ``max_chars``."""
    spans, start = [], 0
    for m in _UNIT_BREAK.finditer(text):
        spans.append((start, m.end()))
        start = m.end()
    if start < len(text) or not spans:
        spans.append((start, len(text)))
    out = []
    for s, e in spans:
        while e - s > max_chars:
            out.append((s, cut := _cut_point(text, s, s + max_chars)))
            s = cut
        out.append((s, e))
    return out


_LONE_SPACE = re.compile(r"(?<=\S) (?=\S)")
_INSIDE_ASCII_WORD = re.compile(r"(?<=[A-Za-z0-9])(?=[A-Za-z0-9])")  # no fixer acts across such a cut


def _cut_point(text: str, start: int, limit: int) -> int:
    """Where to cut a long unit: after its last line break, else before a lone space between two
    words (so no fixer sees half a space run), else between two ASCII letters or digits (no mojibake
    or quote there), else at the limit."""
    nl = text.rfind("\n", start + 1, limit)
    if nl > start:
        return nl + 1
    for pattern in (_LONE_SPACE, _INSIDE_ASCII_WORD):
        last = None
        for last in pattern.finditer(text, start + 1, limit):
            pass
        if last is not None:
            return last.start()
    return limit


def _compose(bounds: np.ndarray, opcodes, new_len: int) -> np.ndarray:
    """Carry a boundary map (positions of the old text -> raw) over one edit (old -> new)."""
    out = np.empty(new_len + 1, dtype=np.int64)
    for tag, i1, i2, j1, j2 in opcodes:
        if tag == "equal":
            out[j1 : j2 + 1] = bounds[i1 : i2 + 1]
        else:
            # inside a replaced block, new positions advance with old ones as far as they can
            k = np.arange(j2 - j1 + 1)
            out[j1 : j2 + 1] = bounds[np.minimum(i1 + k, i2)]
            out[j2] = bounds[i2]
    return out


def normalise_text(raw: str, config: NormaliseConfig | None = None) -> Normalised:
    """Apply the configured fixers to one text; record each change with its raw offsets.

    >>> r = normalise_text("It’s â€˜off-the-scaleâ€™.\\u00a0")
    >>> r.text
    'It’s ‘off-the-scale’.'
    >>> r.fixes
    ['ftfy', 'whitespace']
    >>> r.to_raw([0, len(r.text)]).tolist()
    [0, 26]
    """
    config = config or NormaliseConfig()
    fixers = [(name, FIXERS[name]) for name in config.fixers]
    pieces: list[str] = []
    changes: list[dict] = []
    anchor_norm: list[int] = [0]
    anchor_raw: list[int] = [0]
    norm_pos = 0
    for start, end in _units(raw, config.max_unit_chars):
        unit = raw[start:end]
        cur, bounds = unit, None
        left: dict[str, str] = {}  # each fixer's last input that it returned unchanged
        # One fixer can expose work for another (removing a zero-width space can complete a mojibake
        # sequence), so passes repeat until one changes nothing: the result is then idempotent. A
        # fixer is a pure function, so one that left this very text unchanged would again: not asked.
        for _ in range(MAX_PASSES):
            changed = False
            for name, fix in fixers:
                if left.get(name) is cur:
                    continue
                new, detail = _WITH_DETAIL[name](cur) if name in _WITH_DETAIL else (fix(cur), "")
                if new == cur:
                    left[name] = cur
                    continue
                changed = True
                if bounds is None:
                    bounds = np.arange(len(cur) + 1, dtype=np.int64)
                ops = [(o.tag, o.src_start, o.src_end, o.dest_start, o.dest_end) for o in Levenshtein.opcodes(cur, new)]
                for _, i1, i2, j1, j2 in _merged_edits(ops):
                    changes.append(
                        {
                            "fixer": name,
                            "detail": detail,
                            "raw_start": start + int(bounds[i1]),
                            "raw_end": start + int(bounds[i2]),
                            "before": cur[i1:i2],
                            "after": new[j1:j2],
                        }
                    )
                bounds = _compose(bounds, ops, len(new))
                cur = new
            if not changed:
                break
        if bounds is None:
            _add_anchor(anchor_norm, anchor_raw, norm_pos, start)
        else:
            breaks = np.flatnonzero(np.diff(bounds) != 1) + 1
            _add_anchor(anchor_norm, anchor_raw, norm_pos, start + int(bounds[0]))
            for b in breaks.tolist():
                _add_anchor(anchor_norm, anchor_raw, norm_pos + b, start + int(bounds[b]))
        pieces.append(cur)
        norm_pos += len(cur)
    text = "".join(pieces)
    return Normalised(text, changes, anchor_norm, anchor_raw)


def _merged_edits(ops):
    """Join edits that touch each other (an insert beside a replace) into one change."""
    merged: list[list] = []
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            continue
        if merged and merged[-1][2] == i1 and merged[-1][4] == j1:
            merged[-1][2], merged[-1][4] = i2, j2
        else:
            merged.append([tag, i1, i2, j1, j2])
    return merged


def _add_anchor(an: list[int], ar: list[int], norm: int, raw: int) -> None:
    """Append an anchor unless the offset it states is already implied by the last one."""
    if ar[-1] + (norm - an[-1]) == raw:
        return
    if an[-1] == norm:
        ar[-1] = raw
        return
    an.append(norm)
    ar.append(raw)


def normalise(frame: pl.DataFrame, config: NormaliseConfig | None = None, *, progress: bool = False) -> pl.DataFrame:
    """The stage: add normalised text, fixes fired, changes and the offset map. Drops no rows.

    ``progress`` shows a bar on stderr (the CLI turns it on for a terminal).
    """
    config = config or NormaliseConfig()
    texts = frame[S.TEXT].to_list()
    if progress:
        from tqdm import tqdm

        texts = tqdm(texts, desc="normalise", unit="doc", leave=False, file=sys.stderr)
    results = [normalise_text(t or "", config) for t in texts]
    return frame.with_columns(
        pl.Series(S.TEXT_NORM, [r.text for r in results], dtype=pl.String),
        lists(S.NORM_FIXES, [r.fixes for r in results], pl.String),
        struct_lists(S.NORM_CHANGES, [r.changes for r in results], CHANGE_DTYPE),
        lists(S.ANCHOR_NORM, [r.anchor_norm for r in results], pl.Int64),
        lists(S.ANCHOR_RAW, [r.anchor_raw for r in results], pl.Int64),
    )
