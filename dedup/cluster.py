"""Stage 3b, corpus near-duplicates: exact groups, MinHash LSH candidates, verification, clusters.

1. Documents whose normalised text is identical up to whitespace form an exact group, always.
2. One member of each exact group enters MinHash LSH over word shingles; each candidate pair is
   verified by exact shingle Jaccard (``threshold``) and rapidfuzz ratio (``min_similarity``).
3. Connected components of exact groups and verified pairs are the clusters.
4. One representative per cluster is kept by the stated rule (``keep``: first, earliest, longest; ties
   to the earlier record); every other member gets ``duplicate_of``, its similarity to the
   representative and whether it is an exact or a near copy.
"""

from __future__ import annotations

import datetime as dt
import re
import time

import numpy as np
import polars as pl
from rapidfuzz import fuzz, process

from . import schema as S
from .config import ClusterConfig
from .jobs import cpu_threads
from .minhash import ShingleSets, fast_signatures, fold, fold_all, lsh_pairs, thread_pool


class DisjointSet:
    """Union-find over ``0..n-1``; the root of a set is always its smallest member (deterministic)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent[hi] = lo


def component_roots(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every row on an edge (``edges``: pairs of rows), sorted, and the root of its component: the
    component's smallest row, as :class:`DisjointSet` gives it (a test compares the two). In numpy,
    so that the edges of a million documents become no Python object each.

    Each round hooks, for every edge whose two ends still have different roots, the larger root under
    the smaller, then points every row straight at its new root (pointer jumping). A root only ever
    moves to a smaller row, so the rounds end, and they end with each component under its smallest row.
    """
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    nodes = np.unique(edges)
    a, b = np.searchsorted(nodes, edges[:, 0]), np.searchsorted(nodes, edges[:, 1])
    label = np.arange(len(nodes))  # index into nodes, which are sorted: a smaller index is a smaller row
    while True:
        la, lb = label[a], label[b]
        apart = la != lb
        if not apart.any():
            return nodes, nodes[label]
        a, b, la, lb = a[apart], b[apart], la[apart], lb[apart]  # an edge joined stays joined
        np.minimum.at(label, np.maximum(la, lb), np.minimum(la, lb))
        while not np.array_equal(jumped := label[label], label):
            label = jumped


def document_similarity(a: str, b: str, *, processor=None, score_cutoff=None) -> float:
    """Document similarity 0-100: rapidfuzz ratio of the folded texts (rapidfuzz's scorer shape)."""
    if processor is not None:
        a, b = processor(a), processor(b)
    return fuzz.ratio(fold(a), fold(b), score_cutoff=score_cutoff)


_DATE_FORMATS = ("%d-%b-%Y %H:%M:%S.%f", "%d-%b-%Y %H:%M:%S", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%d-%b-%Y")


def parse_date(value) -> dt.datetime | None:
    """Best-effort date parsing for ``keep = "earliest"`` (ISO 8601 and Reuters' ``26-FEB-1987 15:01:01.79``)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    text = str(value).strip()
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        pass
    text = re.sub(r"\s+", " ", text)
    for fmt in _DATE_FORMATS:
        try:
            return dt.datetime.strptime(text.title() if "%b" in fmt else text, fmt)
        except ValueError:
            continue
    return None


_EPOCH = dt.datetime(1970, 1, 1)


def keep_order(frame: pl.DataFrame, config: ClusterConfig, date_field: str) -> list[tuple[int, int, int]]:
    """A sort key per document, three integers: smaller is preferred as the representative.

    first: ``(0, 0, row)``; longest: ``(-length, 0, row)``; earliest: ``(0, microseconds since 1970,
    row)`` for a readable date and ``(1, 0, row)`` for none, so undated documents come last.
    """
    rows = frame[S.ROW].to_list()
    if config.keep == "first":
        return [(0, 0, r) for r in rows]
    if config.keep == "longest":
        return [(-(n or 0), 0, r) for n, r in zip(frame[S.TEXT_NORM].str.len_chars().to_list(), rows)]
    dates = frame[date_field].to_list() if date_field in frame.columns else [None] * frame.height
    keys = []
    for d, r in zip(dates, rows):
        parsed = parse_date(d)
        if parsed is not None:
            parsed = parsed.replace(tzinfo=None)
            keys.append((0, (parsed - _EPOCH) // dt.timedelta(microseconds=1), r))
        else:
            keys.append((1, 0, r))
    return keys


def whitespace_key(col: pl.Series) -> pl.Series:
    """The text with every run of whitespace as one space, trimmed: identical keys are exact copies.

    Only texts with something to change (two whitespace characters in a row, one other than a
    space, or whitespace at an end) go through the replacement; the rest are their own key. A
    Unicode class makes that check slow (about 0.5 GB/s), so every text first gets byte-class and
    literal checks (ten times faster), and the Unicode regex runs only on texts that have a non-ASCII
    character and passed those (a non-ASCII space is all it can add)."""
    col = col.fill_null("")
    busy = (col.str.contains(r"[\t\n\x0b\x0c\r]") | col.str.contains("  ", literal=True) | col.str.starts_with(" ")
            | col.str.ends_with(" ")).to_numpy()
    wide = np.flatnonzero((col.str.len_chars() != col.str.len_bytes()).to_numpy() & ~busy)
    if len(wide):
        busy[wide] = col.gather(wide).str.contains(r"\s\s|[^\S ]|^\s|\s$").to_numpy()
    if not busy.any():
        return col
    at = np.flatnonzero(busy)
    return col.clone().scatter(at, col.gather(at).str.replace_all(r"\s+", " ").str.strip_chars())


def word_counts(col: pl.Series, cap: int) -> np.ndarray:
    r"""Words in each text (runs of ``\w``; null is empty), counted up to ``cap``: ``min(words, cap)``,
    all that the thresholds ask (a document has words; it has ``min_words``).

    Counting matches costs per match (polars counts 300-word documents at about 7 MB/s), so each
    text's first ``8 * cap`` characters are counted, which settles most texts, and only texts that
    are longer and came up short are counted whole. A prefix never holds more words than its text.

    >>> word_counts(pl.Series(["one two three four", "one, two", "", None, "-- " * 40 + "a b c"]), 3).tolist()
    [3, 2, 0, 0, 3]
    """
    col = col.fill_null("")
    if cap <= 0:
        return np.zeros(len(col), dtype=np.int64)
    width = 8 * cap
    got = col.str.head(width).str.count_matches(r"\w+").to_numpy().astype(np.int64)
    unsure = np.flatnonzero((got < cap) & (col.str.len_bytes().to_numpy() > width))  # bytes >= characters
    if len(unsure):
        got[unsure] = col.gather(unsure).str.count_matches(r"\w+").to_numpy()
    return np.minimum(got, cap)


def signatures_of(texts, config: ClusterConfig, threads: int = 0, rows: np.ndarray | None = None) -> np.ndarray:
    """MinHash signatures (uint32, ``num_perm`` wide) over the word shingles of the folded texts
    (a list or a polars Series; with ``rows``, of those rows of the Series only, gathered a chunk at
    a time so that no copy of the whole column is made).

    Texts are folded ``_FOLD_CHUNK`` at a time (vectorised), then shingled and signed ``_CHUNK`` at a
    time on ``threads`` threads (0: every CPU this process may use); numpy releases the GIL in
    these loops, and each chunk writes its own rows, so the result is the same on any number."""
    n = len(texts) if rows is None else len(rows)
    sig = np.empty((n, config.num_perm), dtype=np.uint32)

    def sign(folded: list[str], at: int) -> None:
        sets = ShingleSets.from_spans(folded, "words", config.shingle_words)
        sig[at : at + len(folded)] = fast_signatures(sets, config.num_perm, config.seed)

    jobs = []
    with thread_pool(threads) as pool:
        for lo in range(0, n, _FOLD_CHUNK):  # the next chunk is folded while the pool signs this one
            chunk = texts[lo : lo + _FOLD_CHUNK] if rows is None else texts.gather(rows[lo : lo + _FOLD_CHUNK])
            folded = fold_all(chunk, threads)
            for job in jobs:
                job.result()
            jobs = [pool.submit(sign, folded[k : k + _CHUNK], lo + k) for k in range(0, len(folded), _CHUNK)]
        for job in jobs:
            job.result()
    return sig


def batch_signatures(docs: pl.DataFrame, config: ClusterConfig,
                     threads: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The corpus stage's inputs from one batch of processed documents, for runs that sign batch by
    batch (streaming, Spark, the in-memory run's jobs): each document's words up to ``min_words``, which documents are live
    (not dropped, not empty), which of those are long enough for LSH (none when clustering is off),
    and their signatures (:func:`signatures_of` on ``threads`` threads)."""
    col = docs[S.TEXT_NORM].fill_null("")
    words = word_counts(col, config.min_words)
    live = docs[S.DROP_REASON].is_null().to_numpy() & (words > 0)
    eligible = np.flatnonzero(live & (words >= config.min_words)) if config.enabled else np.empty(0, dtype=np.int64)
    if not len(eligible):
        return words, live, eligible, np.empty((0, config.num_perm), np.uint32)
    return words, live, eligible, signatures_of(col.gather(eligible), config, threads)


def cluster_inputs(docs: pl.DataFrame, config: ClusterConfig, threads: int = 0) -> pl.DataFrame:
    """``docs`` with what :func:`cluster_documents` computes from each document's text alone: its
    exact key (the whitespace-folded text, hashed) and, for a live document (not dropped) of at least
    ``min_words`` words, its MinHash signature (zeros for the others, which are never signed).

    A job of the document stage adds them (on one thread: a process per core runs it), so that the
    corpus stage, which runs in one process after every job, only groups and links. Both are per
    document, so they are the same however the corpus is cut.
    """
    _, _, signed, signed_sig = batch_signatures(docs, config, threads)
    sig = np.zeros((docs.height, config.num_perm), dtype=np.uint32)
    sig[signed] = signed_sig
    return docs.with_columns(_exact_keys(docs[S.TEXT_NORM].fill_null("")).alias(S.EXACT_KEY), pl.Series(S.SIGNATURE, sig))


def _exact_keys(col: pl.Series) -> pl.Series:
    """The exact key of every text: whitespace-folded, hashed (64 bits), ``_KEY_CHUNK`` at a time."""
    n = len(col)
    return pl.concat([whitespace_key(col.slice(lo, _KEY_CHUNK)).hash(seed=0) for lo in range(0, max(n, 1), _KEY_CHUNK)])[:n]


def _cached(frame: pl.DataFrame, name: str) -> pl.Series | None:
    """Column ``name`` of :func:`cluster_inputs` when every row has it (a batch of an older run may not)."""
    if name in frame.columns and frame[name].null_count() == 0:
        return frame[name]
    return None


def duplicate_link(text: str, kept: str) -> tuple[str, float]:
    """How a cluster member relates to the copy kept: ``("exact", 100.0)`` when identical up to
    whitespace, else ``("near", rapidfuzz ratio of the folded texts)``.

    The definition, one pair at a time; :func:`duplicate_links` gives the same for many at once."""
    if " ".join(text.split()) == " ".join(kept.split()):
        return "exact", 100.0
    return "near", fuzz.ratio(fold(text), fold(kept))


def duplicate_links(texts: list[str], kept: list[str], threads: int = 0,
                    known: list[float | None] | None = None) -> tuple[list[str], list[float]]:
    """:func:`duplicate_link` of every pair ``(texts[k], kept[k])``: the near copies folded together
    and their ratios computed by rapidfuzz on ``threads`` threads (0: every CPU). ``known[k]``, when
    not None, is the pair's ratio already computed (by verification), used instead of computing it."""
    key_a = whitespace_key(pl.Series(texts, dtype=pl.String)).hash(seed=0).to_numpy()
    key_b = whitespace_key(pl.Series(kept, dtype=pl.String)).hash(seed=0).to_numpy()
    kinds = ["exact" if ka == kb and " ".join(a.split()) == " ".join(b.split()) else "near"  # equal keys confirmed
             for ka, kb, a, b in zip(key_a.tolist(), key_b.tolist(), texts, kept)]
    known = known if known is not None else [None] * len(kinds)
    sims = [100.0 if kind == "exact" else r for kind, r in zip(kinds, known)]
    near = [k for k, sim in enumerate(sims) if sim is None]
    if near:
        ratios = process.cpdist(fold_all([texts[k] for k in near], threads), fold_all([kept[k] for k in near], threads),
                                scorer=fuzz.ratio, dtype=np.float64, workers=cpu_threads(threads))
        for k, r in zip(near, ratios.tolist()):
            sims[k] = r
    return kinds, sims


CLUSTER_COLUMNS = {
    S.CLUSTER_ID: pl.Int64,
    S.DUPLICATE_OF: pl.String,
    S.DUP_SIMILARITY: pl.Float64,
    S.DUP_KIND: pl.String,
    S.KEPT_ROW: pl.Int64,
}


def cluster_documents(
    frame: pl.DataFrame, config: ClusterConfig | None = None, *, active: pl.Series | None = None, date_field: str = "date",
    threads: int = 0,
) -> tuple[pl.DataFrame, dict]:
    """The stage: add cluster id, ``duplicate_of``, similarity and kind. Drops no rows.

    ``active`` (bool per row) limits clustering to some documents, e.g. the non-empty ones.
    ``threads``: threads for signatures and rapidfuzz (0: every CPU this process may use).
    Returns the frame and counts and seconds per step for the stats.

    Memory stays at the frame plus one signature row per document: texts are folded and shingled a
    chunk at a time, and the few candidate pairs are verified from their own texts. The columns of
    :func:`cluster_inputs`, when the frame has them, are used instead of computing the same again,
    and are not in the frame returned.
    """
    config = config or ClusterConfig()
    n = frame.height
    col = frame[S.TEXT_NORM].fill_null("")
    words = word_counts(col, config.min_words)
    active_mask = np.ones(n, dtype=bool) if active is None else active.to_numpy().astype(bool)
    active_mask &= words > 0
    ds = DisjointSet(n)
    stats: dict = {"candidates": 0, "verified": 0}
    known_ratio: dict[tuple[int, int], float] = {}  # verified pairs' ratios, reused for their links
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    # 1. exact groups: identical up to whitespace (a 64-bit key, confirmed on the text itself)
    cached_keys, cached_sig = _cached(frame, S.EXACT_KEY), _cached(frame, S.SIGNATURE)
    exact_key = (cached_keys if cached_keys is not None else _exact_keys(col)).to_numpy()
    heads = np.empty(0, dtype=np.int64)
    if config.enabled and n:
        act = np.flatnonzero(active_mask)
        # each active document's head: the first active document with its key (np.unique's first
        # occurrences); a repeat is confirmed on the text itself, and a key collision stays apart
        _, first, inverse = np.unique(exact_key[act], return_index=True, return_inverse=True)
        head_of = act[first][inverse.ravel()]
        repeat = np.flatnonzero(head_of != act)
        collided = []
        for h, i in zip(head_of[repeat].tolist(), act[repeat].tolist()):
            if _same_text(col, h, i):
                ds.union(h, i)
            else:
                collided.append(i)
        heads = np.sort(np.concatenate([act[head_of == act], np.asarray(collided, dtype=np.int64)]))
    timings["exact_seconds"] = time.perf_counter() - t0
    if config.enabled and n:
        # 2. MinHash LSH over one member of each long-enough exact group, then verification
        heads = heads[words[heads] >= config.min_words]
        t0 = time.perf_counter()
        if not len(heads):
            sig = np.empty((0, config.num_perm), np.uint32)
        elif cached_sig is not None and cached_sig.dtype == pl.Array(pl.UInt32, config.num_perm):
            sig = cached_sig.gather(heads).to_numpy()
        else:
            sig = signatures_of(col, config, threads, heads)
        timings["signature_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cands = lsh_pairs(sig, config.bands, config.rows, max_bucket=config.max_bucket, threads=threads)
        timings["lsh_seconds"] = time.perf_counter() - t0
        stats["candidates"] = int(len(cands))
        t0 = time.perf_counter()
        for lo in range(0, len(cands), _VERIFY_CHUNK):  # folded texts of one chunk's pairs at a time
            part = cands[lo : lo + _VERIFY_CHUNK]
            keep, estimates = screened(sig[part[:, 0]], sig[part[:, 1]], config)
            part = heads[part[keep]]  # texts are gathered and folded for these pairs only
            need = np.unique(part)
            folded = dict(zip(need.tolist(), fold_all(col.gather(need), threads)))
            ok, ratio = verify_scores([folded[i] for i in part[:, 0].tolist()], [folded[j] for j in part[:, 1].tolist()],
                                      estimates, config, threads)
            for (i, j), r in zip(part[ok].tolist(), ratio[ok].tolist()):
                ds.union(i, j)
                known_ratio[i, j] = r  # i < j: candidates are sorted pairs of heads in row order
            stats["verified"] += int(ok.sum())
        timings["verify_seconds"] = time.perf_counter() - t0
    # 3. components and representatives (only documents linked to another are visited)
    t0 = time.perf_counter()
    members: dict[int, list[int]] = {}
    for i in [i for i, p in enumerate(ds.parent) if p != i]:
        members.setdefault(ds.find(i), []).append(i)
    groups = [[root, *members[root]] for root in sorted(members)]  # the root is a group's smallest member
    in_cluster = np.array(sorted(i for g in groups for i in g), dtype=np.int64)
    needs = {"longest": [S.TEXT_NORM], "earliest": [date_field] if date_field in frame.columns else []}.get(config.keep, [])
    order = dict(zip(in_cluster.tolist(), keep_order(frame.select(S.ROW, *needs)[in_cluster], config, date_field)))
    reps = [min(g, key=order.__getitem__) for g in groups]
    rows = frame[S.ROW].to_numpy()
    ids = frame[S.DOC_ID].gather(reps).to_list() if reps else []
    at, root_of, rep_of = [], [], []
    for g, rep in zip(groups, reps):
        at += g
        root_of += [g[0]] * len(g)
        rep_of += [rep] * len(g)
    at_, rep_ = np.asarray(at, dtype=np.int64), np.asarray(rep_of, dtype=np.int64)
    copy = at_ != rep_
    rep_id = dict(zip(reps, ids))
    kinds: list[str] = []
    sims: list[float] = []
    for lo in range(0, int(copy.sum()), _VERIFY_CHUNK):
        a_, b_ = at_[copy][lo : lo + _VERIFY_CHUNK], rep_[copy][lo : lo + _VERIFY_CHUNK]
        known = [known_ratio.get((min(x, y), max(x, y))) for x, y in zip(a_.tolist(), b_.tolist())]
        k, sim = duplicate_links(col.gather(a_).to_list(), col.gather(b_).to_list(), threads, known)
        kinds += k
        sims += sim
    timings["components_seconds"] = time.perf_counter() - t0
    stats.update(clusters=len(groups), exact_duplicates=kinds.count("exact"), near_duplicates=kinds.count("near"))
    stats.update({k: round(v, 4) for k, v in timings.items()})
    copies = at_[copy]
    values = {
        S.CLUSTER_ID: (at_, root_of),
        S.DUPLICATE_OF: (copies, [rep_id[r] for r in rep_[copy].tolist()]),
        S.DUP_SIMILARITY: (copies, sims),
        S.DUP_KIND: (copies, kinds),
        S.KEPT_ROW: (at_, rows[rep_].tolist()),
    }
    out = frame.drop(S.EXACT_KEY, S.SIGNATURE, strict=False).with_columns([
        pl.repeat(None, n, dtype=dtype, eager=True).alias(name).scatter(values[name][0], pl.Series(values[name][1], dtype=dtype))
        for name, dtype in CLUSTER_COLUMNS.items()
    ])
    return out, stats


_KEY_CHUNK = 100_000  # texts whose whitespace-folded copies exist at once
_CHUNK = 1000  # documents shingled at once: small enough that numpy reuses its buffers
_FOLD_CHUNK = 20_000  # documents folded at once (their folded copies exist together)
_VERIFY_CHUNK = 20_000  # candidate pairs, or cluster members, checked at once
_EXACT_PAIRS = 64  # pairs shingled together for their exact Jaccard


def _same_text(col: pl.Series, i: int, j: int) -> bool:
    return " ".join(col[i].split()) == " ".join(col[j].split())


# The MinHash estimate of Jaccard has a standard error of at most 0.5/sqrt(num_perm); this many
# standard errors away from the threshold it decides alone, and exact Jaccard is computed only for
# the pairs in between.
ESTIMATE_SIGMAS = 3.5


def estimate_margin(config: ClusterConfig) -> float:
    """How far from the threshold a MinHash estimate must be to decide alone: ``ESTIMATE_SIGMAS``
    standard errors at the worst case (Jaccard 0.5)."""
    return ESTIMATE_SIGMAS * 0.5 / config.num_perm**0.5


def plausible(estimates: np.ndarray, config: ClusterConfig) -> np.ndarray:
    """The candidates whose estimate does not already reject them (:func:`_verified`'s first test),
    so that callers fetch and fold the texts of these pairs only. At a million documents LSH finds
    four candidates per verified pair, most of them far below the threshold."""
    return np.asarray(estimates, dtype=np.float64) >= config.threshold - estimate_margin(config)


def screened(sig_a: np.ndarray, sig_b: np.ndarray, config: ClusterConfig) -> tuple[np.ndarray, np.ndarray]:
    """The MinHash estimate of each row-aligned pair of signatures (the share of equal values), and
    which pairs it does not already reject (:func:`plausible`): that mask, and those pairs' estimates."""
    estimates = (np.asarray(sig_a) == np.asarray(sig_b)).mean(axis=1)
    keep = plausible(estimates, config)
    return keep, estimates[keep]


def _verified(fa: str, fb: str, estimate: float, config: ClusterConfig) -> bool:
    """A candidate pair (folded texts) is a near duplicate: Jaccard (exact near the threshold) and
    rapidfuzz ratio both pass. The definition, one pair at a time: :func:`verify_pairs` must agree."""
    margin = estimate_margin(config)
    if estimate < config.threshold - margin:
        return False
    if estimate < config.threshold + margin:
        sets = ShingleSets.from_spans([fa, fb], "words", config.shingle_words)
        if sets.jaccard(0, 1) < config.threshold:
            return False
    return fuzz.ratio(fa, fb, score_cutoff=config.min_similarity) > 0


def verify_pairs(folded_a: list[str], folded_b: list[str], estimates: np.ndarray, config: ClusterConfig,
                 threads: int = 0) -> np.ndarray:
    """:func:`_verified` of every candidate pair at once (a bool per pair); see :func:`verify_scores`."""
    return verify_scores(folded_a, folded_b, estimates, config, threads)[0]


def verify_scores(folded_a: list[str], folded_b: list[str], estimates: np.ndarray, config: ClusterConfig,
                  threads: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_verified` of every candidate pair at once, and the rapidfuzz ratio of each accepted
    pair (NaN for the rest): the estimate decides first, the pairs near the threshold are shingled
    a few at a time on threads for their exact Jaccard, and the rest get their rapidfuzz ratios on
    ``threads`` threads (0: every CPU)."""
    estimates = np.asarray(estimates, dtype=np.float64)
    margin = estimate_margin(config)
    ok = plausible(estimates, config)
    close = np.flatnonzero(ok & (estimates < config.threshold + margin))
    workers = cpu_threads(threads)

    def exact(idx: np.ndarray) -> np.ndarray:
        sets = ShingleSets.from_spans([folded_a[k] for k in idx.tolist()] + [folded_b[k] for k in idx.tolist()],
                                      "words", config.shingle_words)
        return sets.jaccards(np.arange(len(idx)), len(idx) + np.arange(len(idx)))

    if len(close):
        with thread_pool(workers) as pool:  # a few pairs per call: each call's arrays stay small
            jac = np.concatenate(list(pool.map(exact, np.array_split(close, -(-len(close) // _EXACT_PAIRS)))))
        ok[close[jac < config.threshold]] = False
    ratio = np.full(len(estimates), np.nan)
    rest = np.flatnonzero(ok)
    if len(rest):
        # with a cutoff rapidfuzz returns 0 below it and the exact ratio at or above it
        ratios = process.cpdist([folded_a[k] for k in rest.tolist()], [folded_b[k] for k in rest.tolist()],
                                scorer=fuzz.ratio, score_cutoff=config.min_similarity, dtype=np.float64, workers=workers)
        ok[rest[ratios <= 0]] = False
        ratio[rest[ratios > 0]] = ratios[ratios > 0]
    return ok, ratio
