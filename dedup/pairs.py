"""Stage 3a, within-document repeats: caption-then-paraphrase pairs and repeated passages.

Spinner sites print each photo caption twice, the original and then a machine paraphrase of it; they
also repeat a quoted statement further down. Candidates are (a) in a document of at most
``exact_max_passages`` eligible passages, every pair of similar length; in a larger one, the passages
whose MinHash signatures over character shingles share an LSH band; and (b) every pair of neighbouring
passages (fragments skipped), since a caption's paraphrase follows it. Each candidate is verified with
rapidfuzz and exact Jaccard. A pair is directed: the earlier passage is the original.

Roles: ``original``; ``rewrite`` (a paraphrase); ``verbatim`` (the same words again). Pair kinds:
``caption`` (neighbours) and ``repeat`` (apart). By default a caption rewrite and any verbatim copy are
dropped from the cleaned text; a distant paraphrased repeat is reported and kept.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl
from rapidfuzz import fuzz, process

from . import schema as S
from .config import PairsConfig
from .minhash import ShingleSets, fast_signatures, fold, fold_all, lsh_pairs

PAIR_COLUMNS = {
    S.P_PARTNER: pl.Int32,
    S.P_PAIR_KIND: pl.String,
    S.P_ROLE: pl.String,
    S.P_SIMILARITY: pl.Float64,
    S.P_JACCARD: pl.Float64,
    S.P_ACTION: pl.String,
    S.DROP_REASON: pl.String,
}


def similarity(a: str, b: str, *, processor=None, score_cutoff=None) -> float:
    """Passage similarity 0-100, in rapidfuzz's scorer shape: token_sort_ratio of the folded texts.

    Sorting the words forgives a paraphraser's reordered clauses; unlike token_set_ratio it still
    counts the words that differ, so two parallel report lines that share a template score lower.
    """
    if processor is not None:
        a, b = processor(a), processor(b)
    return fuzz.token_sort_ratio(fold(a), fold(b), score_cutoff=score_cutoff)


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\b", re.I)
_NUMBER_WORDS = {w: str(k) for k, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())}


_THOUSANDS_COMMA = re.compile(r",(?=\d{3}\b)")  # "80,000" is the number 80000


def numbers(text: str) -> set[str]:
    """The numbers a passage states, thousands separators removed and number words as digits.

    >>> sorted(numbers("80,000 - 100,000 troops, six cts, Su-30SM"))
    ['100000', '30', '6', '80000']
    """
    out = set()
    for m in _NUMBER.finditer(text):
        token = m.group().lower()
        token = _NUMBER_WORDS.get(token, token)
        out.add(_THOUSANDS_COMMA.sub("", token))
    return out


def numbers_agree(a: str, b: str, min_containment: float) -> bool:
    """Whether two passages state the same numbers: a rewrite keeps its original's figures, while the
    parallel lines of a table or a report ("Avg shrs 6.2 mln vs 5.6 mln", "Avg shrs 7.0 mln vs 5.6 mln")
    share their wording but not their numbers. Passes when either passage states none.

    >>> numbers_agree("some 94,000 troops on November 1", "94,000 soldiers, November 1", 0.6)
    True
    >>> numbers_agree("totaled 327.6 mln, compared to 295.5 mln", "totaled 596.6 mln, up from 526.8 mln", 0.6)
    False
    """
    return _contained(numbers(a), numbers(b), min_containment, lambda item, other: item in other)


def _contained(na: set[str], nb: set[str], min_containment: float, matches) -> bool:
    """Whether at least ``min_containment`` of the smaller set ``matches`` the other (true when either is empty)."""
    if not na or not nb:
        return True
    small, big = (na, nb) if len(na) <= len(nb) else (nb, na)
    return sum(1 for item in small if matches(item, big)) / len(small) >= min_containment


_NAME = re.compile(r"\b([A-Z][\w’'-]+)")


def names(text: str) -> set[str]:
    """Capitalised words not at a sentence start: the names, places and dates a passage states.

    >>> sorted(names("It said Ramon Morales has left. “Rafael Collado takes over in May."))
    ['collado', 'may', 'morales', 'ramon']
    """
    out = set()
    for m in _NAME.finditer(text):
        before = text[max(0, m.start() - 12) : m.start()].rstrip(" \t\n“”\"‘’'([")
        if before and before[-1] not in ".!?:":  # a capital after a sentence end is no evidence
            out.add(m.group(1).lower())
    return out


def names_agree(a: str, b: str, min_containment: float) -> bool:
    """Whether two passages name the same things: the share of the smaller set of names that has a
    close spelling (rapidfuzz ratio >= 75, so "Zeleskyy" still matches "Zelenskyy") in the other.
    Neighbouring report paragraphs share a template but name other people and firms.

    >>> names_agree("Ukrainian President Volodymyr Zelenskyy visits Donetsk", "Volodymyr Zeleskyy visited Donetsk", 0.6)
    True
    >>> names_agree("It said Ramon Morales has relinquished his role", "It also said Rafael Collado has assumed the role", 0.6)
    False
    """
    def close(name: str, other: set[str]) -> bool:
        return process.extractOne(name, other, scorer=fuzz.ratio, score_cutoff=75) is not None

    return _contained(names(a), names(b), min_containment, close)


def candidate_pairs(passages: pl.DataFrame, config: PairsConfig,
                    eligible: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Candidate pairs as row indices into ``passages`` (same document, ``i < j``), and the folded texts
    (``eligible``: :func:`_eligible` of the passages, when already known).

    A document with at most ``exact_max_passages`` eligible passages has every pair of them looked
    at, except those whose lengths already fail ``min_length_ratio`` (a verbatim copy has its
    original's length, so none is lost): exact, and cheaper than MinHash at that size. A larger
    document's candidates are the passages whose MinHash signatures share an LSH band. Either way,
    neighbouring eligible passages are always candidates: a caption's paraphrase follows it.
    """
    folded = fold_all(passages[S.P_TEXT], threads=1)  # one thread: a worker process per core runs this
    idx = np.flatnonzero(_eligible(passages, config) if eligible is None else eligible)
    rows = passages[S.ROW].to_numpy()[idx]
    doc_start = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if len(idx) else np.empty(0, dtype=np.int64)
    size = np.diff(np.r_[doc_start, len(idx)])
    size_of = np.repeat(size, size)  # per eligible passage: the eligible passages of its document
    small = size_of <= config.exact_max_passages
    lengths = np.fromiter((len(folded[i]) for i in idx.tolist()), dtype=np.int64, count=len(idx))
    exact = _later_pairs(np.arange(len(idx)) - np.repeat(doc_start, size), size_of, small)
    short = np.minimum(lengths[exact[:, 0]], lengths[exact[:, 1]])
    exact = exact[short >= config.min_length_ratio * np.maximum(lengths[exact[:, 0]], lengths[exact[:, 1]])]
    big = np.flatnonzero(~small)
    lsh = np.empty((0, 2), dtype=np.int64)
    if len(big):
        sets = ShingleSets.from_spans([folded[i] for i in idx[big].tolist()], "chars", config.shingle_chars)
        sig = fast_signatures(sets, config.num_perm, config.seed)
        found = lsh_pairs(sig, config.bands, config.rows, groups=rows[big], max_bucket=config.max_bucket)
        if len(found):
            lsh = big[found]
    same_doc = rows[1:] == rows[:-1]
    neighbours = np.column_stack([np.arange(len(idx) - 1)[same_doc], np.arange(1, len(idx))[same_doc]])
    every = np.vstack([exact, lsh.reshape(-1, 2), neighbours.reshape(-1, 2)])
    key = np.unique(every[:, 0] * max(1, len(idx)) + every[:, 1])  # sorted, distinct (i, j) as one number
    return idx[np.column_stack([key // max(1, len(idx)), key % max(1, len(idx))])], folded


def _later_pairs(rank: np.ndarray, size_of: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Every pair ``(k, m)``, ``k < m``, of items in one document, for the ``chosen`` items; items
    come grouped by document, ``rank`` is each one's place in it and ``size_of`` its document's size.

    >>> _later_pairs(np.array([0, 1, 2, 0]), np.array([3, 3, 3, 1]), np.array([True, True, True, True])).tolist()
    [[0, 1], [0, 2], [1, 2]]
    """
    after = np.where(chosen, size_of - rank - 1, 0)
    first = np.repeat(np.arange(len(rank)), after)
    step = np.arange(len(first)) - np.repeat(np.cumsum(after) - after, after)
    return np.column_stack([first, first + 1 + step]).astype(np.int64)


def _document_batches(rows: np.ndarray, size: int, chars: np.ndarray | None = None, max_chars: int = 10**18) -> list[tuple[int, int]]:
    """Cut ``0..len(rows)`` into spans of about ``size`` passages and at most about ``max_chars``
    characters (``chars`` per passage) that never split a document.

    >>> _document_batches(np.array([0, 0, 1, 2, 2]), 2)
    [(0, 2), (2, 3), (3, 5)]
    >>> _document_batches(np.array([0, 1, 2]), 10, np.array([5, 5, 5]), max_chars=10)
    [(0, 2), (2, 3)]
    """
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]).tolist() + [len(rows)]
    cum = np.r_[0, np.cumsum(chars)] if chars is not None else None
    spans, lo = [], 0
    for a, b in zip(starts, starts[1:]):
        too_big = b - lo > size or (cum is not None and cum[b] - cum[lo] > max_chars)
        if too_big and a > lo:
            spans.append((lo, a))
            lo = a
    spans.append((lo, len(rows)))
    return spans


def _assign_pairs(passages: pl.DataFrame, config: PairsConfig, eligible: np.ndarray) -> dict[int, tuple]:
    """Verify the candidates of one batch (``eligible``: :func:`_eligible` of its passages) and give
    each passage at most one partner.

    Returns ``{position: (partner index, pair kind, role, similarity, jaccard)}`` for paired passages.
    """
    cands, folded = candidate_pairs(passages, config, eligible)
    texts = passages[S.P_TEXT].to_list()
    index = passages[S.P_INDEX].to_numpy()
    eligible_pos = _neighbour_rank(passages, eligible)
    if not len(cands):
        return {}
    first, second = cands[:, 0], cands[:, 1]
    near = eligible_pos[second] - eligible_pos[first] == 1  # neighbours: a caption pair, else a repeat
    lengths = np.fromiter(map(len, folded), dtype=np.int64, count=len(folded))
    verbatim = np.zeros(len(cands), dtype=bool)
    same_length = np.flatnonzero(lengths[first] == lengths[second])  # only these can be the same text
    verbatim[same_length] = [folded[i] == folded[j] for i, j in cands[same_length].tolist()]
    short, long = np.minimum(lengths[first], lengths[second]), np.maximum(lengths[first], lengths[second])
    min_sim = np.where(near, config.caption_similarity, config.repeat_similarity)
    # verbatim passes alone; anything else must pass every check: the batched ones first
    maybe = np.flatnonzero(~verbatim & (short >= config.min_length_ratio * long))
    sim = np.where(verbatim, 100.0, 0.0)
    sim[maybe] = _sort_ratios([folded[i] for i in first[maybe].tolist()], [folded[j] for j in second[maybe].tolist()], min_sim[maybe])
    passed = np.flatnonzero(verbatim | (sim >= min_sim))
    # shingles only for the passages still in the running
    members, position = np.unique(np.r_[first[passed], second[passed]], return_inverse=True)
    sets = ShingleSets.from_spans([folded[i] for i in members.tolist()], "chars", config.shingle_chars)
    accepted = []
    for n, k in enumerate(passed.tolist()):
        i, j, neighbours = int(first[k]), int(second[k]), bool(near[k])
        j_score = sets.jaccard(position[n], position[len(passed) + n])
        if not verbatim[k] and not (
            j_score >= (config.caption_jaccard if neighbours else config.repeat_jaccard)
            and numbers_agree(texts[i], texts[j], config.number_containment)
            and names_agree(texts[i], texts[j], config.name_containment)
        ):
            continue
        accepted.append((0 if neighbours else 1, -float(sim[k]), i, j, j_score, bool(verbatim[k])))
    out: dict[int, list] = {}
    # captions first, then the most similar; each later passage takes one earlier partner
    for rank, neg_s, i, j, j_score, verbatim in sorted(accepted):
        ri, rj = out.get(i), out.get(j)
        if rj is not None or (ri is not None and ri[2] in ("rewrite", "verbatim")):
            continue
        pair_kind = "caption" if rank == 0 else "repeat"
        if ri is not None and ri[1] != pair_kind:
            continue  # an original belongs to one kind of pair
        out[j] = [int(index[i]), pair_kind, "verbatim" if verbatim else "rewrite", -neg_s, j_score]
        if ri is None:
            out[i] = [int(index[j]), pair_kind, "original", -neg_s, j_score]
    return {k: tuple(v) for k, v in out.items()}


def _sort_ratios(a: list[str], b: list[str], cutoff: np.ndarray) -> np.ndarray:
    """``fuzz.token_sort_ratio(a[k], b[k], score_cutoff=cutoff[k])`` for every k (0 where below it).

    token_sort_ratio is ``fuzz.ratio`` of the texts with their words sorted; each distinct text's
    words are sorted once here (a text takes part in many pairs), then one C call per distinct cutoff.
    """
    memo = {t: " ".join(sorted(t.split())) for t in {*a, *b}}
    a, b = [memo[t] for t in a], [memo[t] for t in b]
    out = np.zeros(len(a))
    for c in np.unique(cutoff).tolist():
        at = np.flatnonzero(cutoff == c)
        out[at] = process.cpdist([a[k] for k in at.tolist()], [b[k] for k in at.tolist()], scorer=fuzz.ratio,
                                 score_cutoff=c, dtype=np.float64, workers=1)  # one thread: a process per core runs this
    return out


def find_pairs(passages: pl.DataFrame, config: PairsConfig | None = None) -> pl.DataFrame:
    """The stage: add partner, pair kind, role, similarity, Jaccard and action to every passage.

    Passages must come grouped by document (as :func:`dedup.segment.segment` emits them). They are
    handled in batches of whole documents (``batch_passages``), so memory stays bounded on any corpus.
    """
    config = config or PairsConfig()
    n = passages.height
    partner: list[int | None] = [None] * n
    kind: list[str | None] = [None] * n
    role: list[str | None] = [None] * n
    sim: list[float | None] = [None] * n
    jac: list[float | None] = [None] * n
    if config.enabled and n:
        chars = passages[S.P_TEXT].str.len_chars().fill_null(0).to_numpy()
        eligible = _eligible(passages, config)  # per document, so the same in any batch of whole documents
        for lo, hi in _document_batches(passages[S.ROW].to_numpy(), config.batch_passages, chars, config.batch_chars):
            if not eligible[lo:hi].any():
                continue
            for k, value in _assign_pairs(passages.slice(lo, hi - lo), config, eligible[lo:hi]).items():
                for target, v in zip((partner, kind, role, sim, jac), value):
                    target[lo + k] = v
    action, reason = [], []
    for k, r in zip(kind, role):
        if r == "verbatim" and config.drop_verbatim_repeats:
            action.append("drop")
            reason.append(S.REASON_VERBATIM_REPEAT)
        elif r == "rewrite" and k == "caption" and config.drop_rewrites:
            action.append("drop")
            reason.append(S.REASON_CAPTION_REWRITE)
        else:
            action.append("keep")
            reason.append(None)
    values = (partner, kind, role, sim, jac, action, reason)
    return passages.with_columns(
        [pl.Series(name, v, dtype=dtype) for (name, dtype), v in zip(PAIR_COLUMNS.items(), values)]
    )


def _eligible(passages: pl.DataFrame, config: PairsConfig) -> np.ndarray:
    """Which passages take part in pairing: no fragments, at least ``min_words`` words, and another
    such passage in the same document (a passage alone in its document has nothing to pair with, so
    it is not shingled at all)."""
    ok = (pl.col(S.P_KIND) != "fragment") & (pl.col(S.P_WORDS) >= config.min_words)
    return passages.select(ok & (ok.sum().over(S.ROW) >= 2)).to_series().to_numpy()


def _neighbour_rank(passages: pl.DataFrame, eligible: np.ndarray) -> np.ndarray:
    """Position of each passage among the ``eligible`` passages of its document (fragments skipped)."""
    rank = np.cumsum(eligible) - 1
    rows = passages[S.ROW].to_numpy()
    # different documents must never look like neighbours: offset each document's ranks apart
    doc_break = np.r_[0, np.cumsum(rows[1:] != rows[:-1])]
    return rank + doc_break * (len(rank) + 2)
