"""The tools compared, each a function ``texts -> cluster label per text`` with the same shingles
(word 3-grams of the case-folded words), permutations and LSH bands where the tool allows."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import polars as pl

from dedup import schema as S
from dedup.cluster import DisjointSet, cluster_documents
from dedup.config import ClusterConfig
from dedup.minhash import fold, word_shingles

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


def datatrove(texts: list[str]) -> tuple[np.ndarray, dict]:
    """datatrove's MinHash deduplication, its four stages on the local executor: signatures, buckets
    (one task per band, on both cores), clusters, filter. Same n-grams (3), bands (32) and rows (4)
    and seed; its own word tokenizer and text normalisation (lower case, punctuation and digits
    simplified) and 64-bit xxhash. It writes every stage's output to disk, as it is built to."""
    import logging
    import tempfile

    from datatrove.data import Document
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster,
                                                  MinhashDedupFilter, MinhashDedupSignature)

    logging.disable(logging.WARNING)
    try:
        from loguru import logger
        logger.remove()
    except ImportError:
        pass
    cfg = MinhashConfig(n_grams=SHINGLE_WORDS, num_buckets=BANDS, hashes_per_bucket=ROWS, seed=SEED)
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    with tempfile.TemporaryDirectory() as d:
        def run(pipeline, tasks=1, workers=1, name="x"):
            LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=workers, logging_dir=f"{d}/logs-{name}").run()

        run([docs, MinhashDedupSignature(output_folder=f"{d}/sig", config=cfg)], name="sig")
        run([MinhashDedupBuckets(input_folder=f"{d}/sig", output_folder=f"{d}/buckets", config=cfg)],
            tasks=BANDS, workers=2, name="buckets")
        run([MinhashDedupCluster(input_folder=f"{d}/buckets", output_folder=f"{d}/remove", config=cfg, save_cluster_id=True)],
            name="cluster")
        run([docs, MinhashDedupFilter(input_folder=f"{d}/remove")], name="filter")
        raw = Path(d, "remove", "000000.clusters")
        pairs = np.frombuffer(raw.read_bytes(), dtype="<u4").reshape(-1, 2) if raw.exists() else np.empty((0, 2), np.uint32)
    labels = np.arange(len(texts), dtype=np.int64)
    labels[pairs[:, 0].astype(np.int64)] = len(texts) + pairs[:, 1].astype(np.int64)
    return labels, {}


def text_dedup(texts: list[str]) -> tuple[np.ndarray, dict]:
    """text-dedup 0.4.0's MinHash script (``text_dedup.minhash``), called as its command line is, on
    a JSONL file of the texts (it reads a Hugging Face ``datasets`` dataset; writing the file is
    timed too) with a fresh cache folder, both cores (``--num_proc 2``), word 3-grams, 128
    permutations and 32 bands x 4 rows. Its own tokenizer (lower case, split on each non-word
    character), its default sha1 hash, and its permutations from its fixed seed 42 (the script does
    not read ``--seed``); no verification. Clusters are read from the union-find the script leaves in
    its module, indexed by input position."""
    import json
    import os
    import tempfile

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # a local file: nothing may come from the hub
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets
    import text_dedup.minhash as td

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d, "corpus.jsonl")
        path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
        td.main(["--path", "json", "--data_files", str(path), "--split", "train", "--cache_dir", f"{d}/cache",
                 "--output", f"{d}/out", "--column", "text", "--ngram", str(SHINGLE_WORDS), "--num_perm", str(NUM_PERM),
                 "--threshold", str(THRESHOLD), "--b", str(BANDS), "--r", str(ROWS), "--min_length", "0",
                 "--num_proc", "2"], standalone_mode=False)
    return np.array([td.uf.find(i) for i in range(len(texts))], dtype=np.int64), {}


def hashing_floor(texts: pl.Series) -> tuple[np.ndarray | None, dict]:
    """Not a tool: the least any of them must do, written as a user would vectorise it with polars:
    case-fold, split into words, hash every word once (polars' hash) and mix each run of three word
    hashes into one 3-gram hash; no signatures, no LSH. Chunked, so memory stays flat."""
    total = 0
    for lo in range(0, len(texts), 20_000):
        words = (pl.DataFrame({"t": texts.slice(lo, 20_000)}).with_row_index("doc")
                 .select("doc", pl.col("t").str.to_lowercase().str.extract_all(r"\w+").alias("w")).explode("w")
                 .drop_nulls())
        h = words["w"].hash(seed=SEED).to_numpy()
        doc = words["doc"].to_numpy()
        with np.errstate(over="ignore"):
            grams = (h[:-2] * np.uint64(0x9E3779B97F4A7C15)) ^ (h[1:-1] * np.uint64(0xC2B2AE3D27D4EB4F)) ^ h[2:]
        total += int(np.count_nonzero(grams[doc[:-2] == doc[2:]]))  # the 3-grams inside one document
    return None, {}


TAKES_SERIES = {"dedup", "hashing_floor"}  # the others get a list of str, made before their clock starts

PEERS = {
    "dedup": dedup_cluster,
    "datasketch_update_batch": datasketch_update_batch,
    "datasketch_bulk": datasketch_bulk,
    "rensa": rensa,
    "datatrove": datatrove,
    "text_dedup": text_dedup,
    "hashing_floor": hashing_floor,
}


def available(name: str) -> bool:
    """Whether a peer's package is installed (the ``bench`` extra)."""
    module = {"rensa": "rensa", "datatrove": "datatrove.pipeline.dedup.minhash", "text_dedup": "text_dedup.minhash"}.get(name)
    if module is None:
        return True
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
