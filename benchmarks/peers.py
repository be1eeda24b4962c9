"""The tools compared, each a function ``texts -> cluster label per text`` with the same shingles
(word 3-grams of the case-folded words), permutations and LSH bands where the tool allows."""

from __future__ import annotations

import numpy as np
import polars as pl

from dedup import schema as S
from dedup.cluster import DisjointSet, cluster_documents
from dedup.config import ClusterConfig
from dedup.minhash import ShingleSets, fold, word_shingles

NUM_PERM = 128
BANDS, ROWS = 32, 4
THRESHOLD = 0.7
SHINGLE_WORDS = 3
SEED = 1


def _labels_from_pairs(n: int, pairs) -> np.ndarray:
    ds = DisjointSet(n)
    for i, j in pairs:
        ds.union(i, j)
    return np.array([ds.find(i) for i in range(n)])


def _shingle_bytes(texts: list[str]) -> list[list[bytes]]:
    return [[s.encode("utf-8") for s in word_shingles(fold(t), SHINGLE_WORDS)] for t in texts]


def dedup_cluster(texts: pl.Series) -> tuple[np.ndarray, dict]:
    """dedup's corpus stage: exact groups, MinHash LSH, verification (Jaccard and rapidfuzz), components.
    It takes the text column as it is (a polars frame is its input), the peers a list of strings."""
    n = len(texts)
    frame = pl.DataFrame({S.ROW: np.arange(n), S.DOC_ID: pl.int_range(n, eager=True).cast(pl.String), S.TEXT_NORM: texts})
    config = ClusterConfig(num_perm=NUM_PERM, bands=BANDS, rows=ROWS, threshold=THRESHOLD, shingle_words=SHINGLE_WORDS, seed=SEED)
    out, stats = cluster_documents(frame, config)
    cid = out[S.CLUSTER_ID].to_numpy()
    labels = np.where(np.isnan(cid.astype(float)), np.arange(len(texts)), cid).astype(np.int64)
    stages = {k: v for k, v in stats.items() if k.endswith("_seconds")}
    return labels, stages


def _datasketch_lsh(minhashes, n: int) -> np.ndarray:
    from datasketch import MinHashLSH

    lsh = MinHashLSH(num_perm=NUM_PERM, params=(BANDS, ROWS))
    with lsh.insertion_session() as session:
        for i, m in enumerate(minhashes):
            session.insert(i, m)
    pairs = [(i, j) for i, m in enumerate(minhashes) for j in lsh.query(m) if j > i]
    return _labels_from_pairs(n, pairs)


def datasketch_update_batch(texts: list[str]) -> tuple[np.ndarray, dict]:
    """What a user writes first: one MinHash per document, ``update_batch``, then MinHashLSH."""
    from datasketch import MinHash

    mins = []
    for shingles in _shingle_bytes(texts):
        m = MinHash(num_perm=NUM_PERM, seed=SEED, scheme="affine32")
        m.update_batch(shingles)
        mins.append(m)
    return _datasketch_lsh(mins, len(texts)), {}


def datasketch_bulk(texts: list[str]) -> tuple[np.ndarray, dict]:
    """datasketch's faster path: ``MinHash.bulk``, then MinHashLSH."""
    from datasketch import MinHash

    mins = MinHash.bulk(_shingle_bytes(texts), num_perm=NUM_PERM, seed=SEED, scheme="affine32")
    return _datasketch_lsh(mins, len(texts)), {}


def rensa(texts: list[str]) -> tuple[np.ndarray, dict]:
    """rensa's R-MinHash (Rust) and its LSH, with the same bands (its own hash and permutations)."""
    from rensa import RMinHash, RMinHashLSH

    lsh = RMinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, num_bands=BANDS)
    mins = []
    for i, t in enumerate(texts):
        m = RMinHash(num_perm=NUM_PERM, seed=SEED)
        m.update(list(word_shingles(fold(t), SHINGLE_WORDS)))
        lsh.insert(i, m)
        mins.append(m)
    pairs = [(i, j) for i, m in enumerate(mins) for j in lsh.query(m) if j > i]
    return _labels_from_pairs(len(texts), pairs), {}


def hashing_floor(texts: list[str]) -> tuple[np.ndarray | None, dict]:
    """Not a tool: hashing every word 3-gram once, vectorised; the least any of them must do."""
    ShingleSets.from_spans([fold(t) for t in texts], "words", SHINGLE_WORDS)
    return None, {}


TAKES_SERIES = {"dedup"}  # the others get a list of str, made before their clock starts

PEERS = {
    "dedup": dedup_cluster,
    "datasketch_update_batch": datasketch_update_batch,
    "datasketch_bulk": datasketch_bulk,
    "rensa": rensa,
    "hashing_floor": hashing_floor,
}


def available(name: str) -> bool:
    if name == "rensa":
        try:
            import rensa as _  # noqa: F401
        except ImportError:
            return False
    return True
