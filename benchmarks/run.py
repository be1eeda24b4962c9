"""Benchmark suite: dedup's corpus near-duplicate stage beside the tools a user would pick instead.

    python -m benchmarks.run --sizes 10000 100000 --repeats 3

builds seeded corpora from real Reuters sentences (ground truth saved), runs every tool in a fresh
process per measurement (so peak memory is the tool's own), and writes
``benchmarks/results/<date>-<commit>.json`` and ``.md`` with PNG plots beside them. Speed is reported
as medians and as ratios measured in the same run, never as absolute promises.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_REUTERS = ROOT.parent / "shared" / "data" / "reuters" / "dev.jsonl.gz"


# ---------------------------------------------------------------------------------------------
# quality: pair precision/recall and adjusted Rand index from the contingency table
# ---------------------------------------------------------------------------------------------

def _pairs(counts: np.ndarray) -> float:
    counts = counts.astype(np.float64)
    return float((counts * (counts - 1) / 2).sum())


def quality(pred: np.ndarray, truth: np.ndarray) -> dict:
    frame = pl.DataFrame({"p": pred, "t": truth})
    both = _pairs(frame.group_by("p", "t").len()["len"].to_numpy())
    pred_pairs = _pairs(frame.group_by("p").len()["len"].to_numpy())
    true_pairs = _pairs(frame.group_by("t").len()["len"].to_numpy())
    total = len(pred) * (len(pred) - 1) / 2
    expected = pred_pairs * true_pairs / total if total else 0.0
    max_index = (pred_pairs + true_pairs) / 2
    ari = (both - expected) / (max_index - expected) if max_index != expected else 1.0
    return {
        "pair_precision": both / pred_pairs if pred_pairs else 1.0,
        "pair_recall": both / true_pairs if true_pairs else 1.0,
        "adjusted_rand_index": ari,
    }


def strong_pairs(texts: list[str], truth: np.ndarray, threshold: float) -> np.ndarray:
    """The pairs exact Jaccard puts at or above ``threshold``. Only pairs inside a true cluster can
    get there (the rest are unrelated resampled text), so only those are computed."""
    from dedup.minhash import ShingleSets, fold

    from .peers import SHINGLE_WORDS

    frame = pl.DataFrame({"i": np.arange(len(truth)), "t": truth})
    groups = frame.group_by("t").agg("i").filter(pl.col("i").list.len() > 1)["i"].to_list()
    out = []
    for members in groups:
        sets = ShingleSets.from_spans([fold(texts[i]) for i in members], "words", SHINGLE_WORDS)
        for a in range(len(members)):
            for b in range(a + 1, len(members)):
                if sets.jaccard(a, b) >= threshold:
                    out.append((members[a], members[b]))
    return np.array(out, dtype=np.int64).reshape(-1, 2)


def recall_details(pred: np.ndarray, strong: np.ndarray, corpus: pl.DataFrame) -> dict:
    """Recall of the strong pairs, and per edit rate the share of copies clustered with their original."""
    out = {"strong_pairs": int(len(strong)),
           "strong_pair_recall": float((pred[strong[:, 0]] == pred[strong[:, 1]]).mean()) if len(strong) else 1.0}
    ids = {d: k for k, d in enumerate(corpus["id"].to_list())}
    orig = np.array([ids[t] for t in corpus["truth"].to_list()])
    rates = corpus["edit_rate"].to_numpy()
    for rate in sorted(set(rates.tolist()) - {0.0}):
        mask = rates == rate
        out[f"copies_found_at_{rate:g}"] = float((pred[mask] == pred[orig[mask]]).mean())
    return out


# ---------------------------------------------------------------------------------------------
# one measurement, in its own process
# ---------------------------------------------------------------------------------------------

def child(tool: str, corpus: Path, labels_out: Path) -> None:
    from .peers import PEERS, TAKES_SERIES

    texts = pl.read_parquet(corpus, columns=["text"])["text"]
    if tool not in TAKES_SERIES:
        texts = texts.to_list()
    t0 = time.perf_counter()
    labels, stages = PEERS[tool](texts)
    seconds = time.perf_counter() - t0
    if labels is not None:
        np.save(labels_out, labels)
    print(json.dumps({"seconds": seconds, "peak_rss_mb": own_peak_rss_mb(), "stages": stages}))


def own_peak_rss_mb() -> float:
    """This process's own peak resident set: the kernel's high-water mark of its memory (VmHWM).
    Not ``ru_maxrss``: Linux carries that across exec, so a child started by a parent holding a
    large corpus would report the parent's size."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(x.split()[1]) for x in fh if x.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):  # not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pinned(cores: int | None):
    """The environment and ``preexec_fn`` of a child pinned to the first ``cores`` CPUs (it then sees
    that many: dedup's threads and process pool follow the affinity mask), or as it is for None."""
    env = dict(os.environ)
    if cores is None:
        return env, None
    env.update(POLARS_MAX_THREADS=str(cores), OMP_NUM_THREADS=str(cores), RAYON_NUM_THREADS=str(cores))
    cpus = sorted(os.sched_getaffinity(0))[:cores]
    return env, lambda: os.sched_setaffinity(0, cpus)


def measure(tool: str, corpus: Path, labels_out: Path, threads: int | None) -> dict:
    env, pin = pinned(threads)
    cmd = [sys.executable, "-m", "benchmarks.run", "--child", tool, str(corpus), str(labels_out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, preexec_fn=pin)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} failed on {corpus}:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# the suite
# ---------------------------------------------------------------------------------------------

def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("dedup", "datasketch", "rapidfuzz", "polars", "numpy", "rensa", "ftfy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "nocommit"


def run_suite(sizes: list[int], repeats: int, tools: list[str], seed: int, reuters: Path, out_dir: Path,
              cache: Path, max_size_for: dict[str, int], command: str) -> Path:
    from . import peers
    from .corpus import make_corpus, reuters_sentences

    cache.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    sentences = reuters_sentences(reuters)
    results = []
    variants = [(t, None) for t in tools if peers.available(t)]
    if "dedup" in tools:
        variants.append(("dedup", 1))
    for n in sizes:
        corpus_path = cache / f"corpus-{n}-{seed}.parquet"
        if not corpus_path.exists():
            make_corpus(sentences, n, seed).write_parquet(corpus_path)
        corpus = pl.read_parquet(corpus_path)
        truth = corpus["truth"].to_numpy()
        strong = strong_pairs(corpus["text"].to_list(), truth, peers.THRESHOLD + 0.05)
        for tool, threads in variants:
            if n > max_size_for.get(tool, 10**12):
                continue
            runs = [measure(tool, corpus_path, cache / f"labels-{tool}-{n}.npy", threads) for _ in range(repeats)]
            row = {
                "tool": tool if threads is None else f"{tool} (1 core)",
                "docs": n,
                "seconds_median": statistics.median(r["seconds"] for r in runs),
                "seconds_all": [round(r["seconds"], 3) for r in runs],
                "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                "stages": runs[-1]["stages"],
            }
            labels_path = cache / f"labels-{tool}-{n}.npy"
            if tool != "hashing_floor" and labels_path.exists():
                pred = np.load(labels_path)
                row.update(quality(pred, truth))
                row.update(recall_details(pred, strong, corpus))
            results.append(row)
            print(f"{n:>8} {row['tool']:<28} {row['seconds_median']:8.2f} s  {row['peak_rss_mb']:7.0f} MB", file=sys.stderr)
    stamp = f"{dt.date.today().isoformat()}-{_commit()}"
    k = 2
    while (out_dir / f"{stamp}.json").exists():  # a second run at the same commit keeps the first
        stamp = f"{dt.date.today().isoformat()}-{_commit()}-{k}"
        k += 1
    record = {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "commit": _commit(),
        "command": command,
        "seed": seed,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "versions": _versions(),
        "params": {"num_perm": peers.NUM_PERM, "bands": peers.BANDS, "rows": peers.ROWS, "threshold": peers.THRESHOLD,
                   "shingles": f"word {peers.SHINGLE_WORDS}-grams of case-folded words", "corpus": "Reuters sentences resampled into 300-word documents, 30% near duplicates at edit rates 1/2/5/10%"},
        "results": results,
    }
    json_path = out_dir / f"{stamp}.json"
    json_path.write_text(json.dumps(record, indent=1) + "\n")
    from .report import write_report

    write_report(record, out_dir / f"{stamp}.md", out_dir / stamp)
    return json_path


def main(argv=None) -> None:
    from .peers import PEERS

    ap = argparse.ArgumentParser(description="dedup benchmark suite")
    ap.add_argument("--child", nargs=3, metavar=("TOOL", "CORPUS", "LABELS"), help=argparse.SUPPRESS)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tools", nargs="+", default=list(PEERS), help="default: every peer installed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuters", type=Path, default=DEFAULT_REUTERS)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--cache", type=Path, default=HERE / ".cache")
    ap.add_argument("--max-size", action="append", default=[], metavar="TOOL=N", help="skip TOOL above N documents")
    args = ap.parse_args(argv)
    if args.child:
        tool, corpus, labels = args.child
        child(tool, Path(corpus), Path(labels))
        return
    limits = {k: int(v) for k, v in (item.split("=") for item in args.max_size)}
    command = "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv)
    path = run_suite(args.sizes, args.repeats, args.tools, args.seed, args.reuters, args.out, args.cache, limits, command)
    print(path)


if __name__ == "__main__":
    main()
