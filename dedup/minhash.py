"""Shingles, MinHash signatures (datasketch) and LSH banding over a signature matrix.

Signatures come from :meth:`datasketch.MinHash.bulk` with the permutation scheme pinned
(``affine32``: datasketch 2.0 changed its default once, and a pinned scheme keeps signatures equal
across versions and engines). Banding is done on the whole signature matrix with numpy and polars,
grouped by an optional key (a document, for within-document pairs), so one code path serves both the
within-document and the corpus stage; a test checks it against :class:`datasketch.MinHashLSH`.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl
from datasketch import MinHash

SCHEME = "affine32"
_CHUNK = 2048
_TOKEN = re.compile(r"\w+")


def fold(text: str) -> str:
    """Case-folded word sequence: the form that shingles, exact keys and fuzzy scores see.

    >>> fold("Ukraine’s DAY of the  Armed-Forces!")
    'ukraine s day of the armed forces'
    """
    return " ".join(_TOKEN.findall(text.lower()))


def char_shingles(folded: str, k: int) -> set[str]:
    """Character k-grams of a folded text (the whole text when shorter than k).

    >>> sorted(char_shingles("ab cd", 3))
    [' cd', 'ab ', 'b c']
    """
    if len(folded) <= k:
        return {folded} if folded else set()
    return {folded[i : i + k] for i in range(len(folded) - k + 1)}


def word_shingles(folded: str, k: int) -> set[str]:
    """Word k-grams of a folded text (the whole text when it has fewer than k words).

    >>> sorted(word_shingles("a b c d", 3))
    ['a b c', 'b c d']
    """
    words = folded.split()
    if len(words) <= k:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: set, b: set) -> float:
    """Exact Jaccard similarity of two sets (0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def signatures(shingle_sets: list[set[str]], num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures, one row per set, as a ``(n, num_perm)`` uint32 matrix."""
    out = np.empty((len(shingle_sets), num_perm), dtype=np.uint32)
    for lo in range(0, len(shingle_sets), _CHUNK):  # chunks keep the encoded shingles transient
        data = [[s.encode("utf-8") for s in shingles] for shingles in shingle_sets[lo : lo + _CHUNK]]
        for k, m in enumerate(MinHash.generator(data, num_perm=num_perm, seed=seed, scheme=SCHEME)):
            out[lo + k] = m.hashvalues
    return out


def _band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per (row, band): a mix of the band's hash values, shape ``(n, bands)``.

    Column ``b*rows + r`` is value ``r`` of band ``b``, so ``sig[:, r::rows]`` holds value ``r`` of
    every band at once.
    """
    sig64 = sig.astype(np.uint64)
    keys = np.zeros((sig.shape[0], bands), dtype=np.uint64)
    prime = np.uint64(0x100000001B3)
    with np.errstate(over="ignore"):
        for r in range(rows):
            keys = (keys ^ sig64[:, r : bands * rows : rows]) * prime
            keys ^= keys >> np.uint64(29)
    return keys


def lsh_pairs(
    sig: np.ndarray,
    bands: int,
    rows: int,
    groups: np.ndarray | None = None,
    max_bucket: int = 10**9,
) -> np.ndarray:
    """Candidate pairs ``(i, j)``, ``i < j``: rows that agree on every value of at least one band.

    Band ``b`` covers signature columns ``b*rows .. b*rows+rows-1``, as in datasketch. With ``groups``,
    only rows of the same group pair. A bucket of more than ``max_bucket`` rows yields the chain of
    its sorted members instead of all pairs, so that its cost stays linear.
    """
    n = sig.shape[0]
    if n < 2:
        return np.empty((0, 2), dtype=np.int64)
    keys = _band_keys(sig, bands, rows)
    frame = pl.DataFrame(
        {
            "g": np.repeat(groups if groups is not None else np.zeros(n, dtype=np.int64), bands),
            "band": np.tile(np.arange(bands, dtype=np.int32), n),
            "key": keys.reshape(-1),
            "i": np.repeat(np.arange(n, dtype=np.int64), bands),
        }
    )
    frame = frame.with_columns(pl.len().over("g", "band", "key").alias("size")).filter(pl.col("size") > 1)
    small = frame.filter(pl.col("size") <= max_bucket).drop("size")
    pairs = (
        small.join(small, on=["g", "band", "key"], suffix="_j")
        .filter(pl.col("i") < pl.col("i_j"))
        .select(pl.col("i"), pl.col("i_j").alias("j"))
    )
    big = frame.filter(pl.col("size") > max_bucket).sort("g", "band", "key", "i")
    if big.height:
        chain = big.with_columns(pl.col("i").shift(-1).over("g", "band", "key").alias("j")).drop_nulls("j")
        pairs = pl.concat([pairs, chain.select("i", pl.col("j").cast(pl.Int64))])
    pairs = pairs.unique().sort("i", "j")
    return pairs.to_numpy().reshape(-1, 2)
