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

import numpy as np
import polars as pl
from rapidfuzz import fuzz

from . import schema as S
from .config import ClusterConfig
from .minhash import ShingleSets, fast_signatures, fold, lsh_pairs


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


def _keep_order(frame: pl.DataFrame, config: ClusterConfig, date_field: str) -> list[tuple]:
    """A sort key per document: smaller is preferred as the representative."""
    rows = frame[S.ROW].to_list()
    if config.keep == "first":
        return [(r,) for r in rows]
    if config.keep == "longest":
        return [(-n, r) for n, r in zip(frame[S.TEXT_NORM].str.len_chars().to_list(), rows)]
    dates = frame[date_field].to_list() if date_field in frame.columns else [None] * frame.height
    keys = []
    for d, r in zip(dates, rows):
        parsed = parse_date(d)
        keys.append((0, parsed, r) if parsed is not None else (1, dt.datetime.min, r))
    return keys


CLUSTER_COLUMNS = {
    S.CLUSTER_ID: pl.Int64,
    S.DUPLICATE_OF: pl.String,
    S.DUP_SIMILARITY: pl.Float64,
    S.DUP_KIND: pl.String,
}


def cluster_documents(
    frame: pl.DataFrame, config: ClusterConfig | None = None, *, active: pl.Series | None = None, date_field: str = "date"
) -> tuple[pl.DataFrame, dict]:
    """The stage: add cluster id, ``duplicate_of``, similarity and kind. Drops no rows.

    ``active`` (bool per row) limits clustering to some documents, e.g. the non-empty ones.
    Returns the frame and counts for the stats.
    """
    config = config or ClusterConfig()
    n = frame.height
    texts = frame[S.TEXT_NORM].to_list()
    folded = [fold(t) for t in texts]
    exact_key = [" ".join(t.split()) for t in texts]
    active_mask = np.ones(n, dtype=bool) if active is None else active.to_numpy().astype(bool)
    active_mask &= np.array([bool(f) for f in folded], dtype=bool)
    ds = DisjointSet(n)
    stats = {"candidates": 0, "verified": 0}
    if config.enabled and n:
        # 1. exact groups
        first_of: dict[str, int] = {}
        heads = []
        for i in np.flatnonzero(active_mask).tolist():
            head = first_of.setdefault(exact_key[i], i)
            if head == i:
                heads.append(i)
            else:
                ds.union(head, i)
        # 2. LSH over one member of each long-enough exact group, then verification
        heads = [i for i in heads if len(folded[i].split()) >= config.min_words]
        sets = ShingleSets.from_spans([folded[i] for i in heads], "words", config.shingle_words)
        sig = fast_signatures(sets, config.num_perm, config.seed)
        cands = lsh_pairs(sig, config.bands, config.rows, max_bucket=config.max_bucket)
        stats["candidates"] = int(len(cands))
        for a, b in cands.tolist():
            i, j = heads[a], heads[b]
            if sets.jaccard(a, b) < config.threshold:
                continue
            if fuzz.ratio(folded[i], folded[j], score_cutoff=config.min_similarity) == 0:
                continue
            stats["verified"] += 1
            ds.union(i, j)
    # 3. components and representatives
    order = _keep_order(frame, config, date_field)
    members: dict[int, list[int]] = {}
    for i in np.flatnonzero(active_mask).tolist():
        members.setdefault(ds.find(i), []).append(i)
    ids = frame[S.DOC_ID].to_list()
    cluster_id: list[int | None] = [None] * n
    dup_of: list[str | None] = [None] * n
    dup_sim: list[float | None] = [None] * n
    dup_kind: list[str | None] = [None] * n
    clusters = 0
    for root, group in members.items():
        if len(group) < 2:
            continue
        clusters += 1
        rep = min(group, key=lambda i: order[i])
        for i in group:
            cluster_id[i] = root
            if i == rep:
                continue
            dup_of[i] = ids[rep]
            exact = exact_key[i] == exact_key[rep]
            dup_kind[i] = "exact" if exact else "near"
            dup_sim[i] = 100.0 if exact else fuzz.ratio(folded[i], folded[rep])
    stats.update(
        clusters=clusters,
        exact_duplicates=sum(k == "exact" for k in dup_kind),
        near_duplicates=sum(k == "near" for k in dup_kind),
    )
    values = (cluster_id, dup_of, dup_sim, dup_kind)
    out = frame.with_columns(
        [pl.Series(name, v, dtype=dtype) for (name, dtype), v in zip(CLUSTER_COLUMNS.items(), values)]
    )
    return out, stats
