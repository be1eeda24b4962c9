"""Memory budgets: the in-memory run against streaming runs (`--memory-budget`) on one corpus.

    python -m benchmarks.stream [--mb 100] [--budgets 64MB 256MB] [--no-garble] [--one-process]

The corpus is ``benchmarks.corpus.news_file``: documents resampled from Reuters dev sentences, every
fifth one a near copy, ``--mb`` megabytes of JSONL. Each run is a fresh ``dedup clean`` process; its
peak resident set is sampled over its process tree and taken from the kernel (``benchmarks.engines``' wrapper), and the streaming runs also report the memory they
held before reading input (``base``) and their peak above it, by pass. Every streamed run's outputs
are compared with the in-memory run's (JSONL bytes, annotations frame). Results:
``benchmarks/results/stream-<date>-<commit>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path

import polars as pl

from .corpus import news_file
from .engines import REUTERS, wrapped
from .run import _commit

HERE = Path(__file__).resolve().parent
TEXT_FILES = ("cleaned.jsonl", "dropped.jsonl", "dropped_passages.jsonl")


def run(corpus: Path, out: Path, budget: str | None, garble: bool, one_process: bool = False) -> dict:
    cmd = [sys.executable, "-m", "dedup", "clean", str(corpus), "-o", str(out), "-q"]
    if budget:
        cmd += ["--memory-budget", budget]
    if not garble:
        cmd += ["--set", "garble.enabled=false"]
    if one_process:
        cmd += ["--set", "engine.processes=1"]
    # a small wrapper process per run: its children's peak is this run's alone (Linux keeps a
    # process's peak across exec, so a child of this larger process would report ours)
    timed = wrapped(cmd, cwd=None)  # its peak_rss_mb counts MiB; this report counts MB
    stats = json.loads((out / "stats.json").read_text())
    eng = stats.get("engine", {})
    return {
        "budget": (budget or "none (in memory)") + (", engine.processes=1" if one_process else ""), "seconds": round(timed["seconds"], 1), "peak_rss_mb": round(timed["peak_rss_mb"] * 2**20 / 1e6, 1),
        "base_rss_mb": round(eng["base_rss_bytes"] / 1e6, 1) if eng else None,
        "data_peak_mb": round(eng["data_peak_bytes"] / 1e6, 1) if eng else None,
        "data_peak_mb_by_pass": {k: round(v / 1e6, 1) for k, v in eng.get("data_peak_bytes_by_pass", {}).items()},
        "batches": eng.get("batches"), "processes": eng.get("processes", 1) if eng else None, "records": stats["input"]["records"], "result": stats["result"],
        "command": " ".join(["python", *cmd[1:]]),
    }


def same_outputs(a: Path, b: Path) -> bool:
    if any((a / f).read_bytes() != (b / f).read_bytes() for f in TEXT_FILES):
        return False
    return pl.read_parquet(a / "annotations.parquet").equals(pl.read_parquet(b / "annotations.parquet"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=100, help="corpus size in MB of JSONL")
    ap.add_argument("--budgets", nargs="+", default=["64MB", "256MB"])
    ap.add_argument("--no-garble", action="store_true", help="switch garble scoring off (faster)")
    ap.add_argument("--one-process", action="store_true",
                    help="also run each budget with engine.processes=1, for the gain of sharing batches")
    ap.add_argument("--cache", type=Path, default=HERE / ".cache")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    corpus = args.cache / f"news-{args.mb}mb.jsonl"
    if not corpus.exists():
        news_file(REUTERS, corpus, args.mb * 10**6)
    garble = not args.no_garble
    base_out = args.cache / "stream-out-memory"
    runs = [run(corpus, base_out, None, garble)]
    for budget in args.budgets:
        for one in (False, True) if args.one_process else (False,):
            out = args.cache / f"stream-out-{budget}{'-1' if one else ''}"
            res = run(corpus, out, budget, garble, one)
            res["same_outputs_as_in_memory"] = same_outputs(base_out, out)
            runs.append(res)
    command = "python -m benchmarks.stream " + " ".join(argv if argv is not None else sys.argv[1:])
    res = {
        "date": dt.date.today().isoformat(), "commit": _commit(), "command": command.strip(),
        "corpus": {"path": corpus.name, "bytes": corpus.stat().st_size, "records": runs[0]["records"]},
        "garble": garble, "platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"stream-{res['date']}-{res['commit']}"
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(res))
    print(markdown(res))
    return 0


def markdown(res: dict) -> str:
    c = res["corpus"]
    lines = [
        f"# Memory budgets: {c['bytes'] / 1e6:.0f} MB corpus, {c['records']} documents ({res['date']}, {res['commit']})", "",
        f"`{res['command']}` on {res['platform']}, {res['cpus']} CPUs; garble scoring {'on' if res['garble'] else 'off'}.", "",
        "The budget counts memory for data: the peak resident set above what the run held before reading input "
        "(`base`, measured after a warm-up on a tiny corpus), summed over the run's processes (each process's own "
        "peak, so a bound on their peak together). Peak RSS is sampled over the whole process tree.", "",
        "| budget | seconds | peak RSS MB | base MB | data peak MB | by pass (documents / cluster / verdicts / outputs) | batches | processes | same outputs |",
        "|---|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for r in res["runs"]:
        passes = " / ".join(str(v) for v in r["data_peak_mb_by_pass"].values()) or "-"
        same = {True: "yes", False: "NO"}.get(r.get("same_outputs_as_in_memory"), "(reference)")
        lines.append(f"| {r['budget']} | {r['seconds']} | {r['peak_rss_mb']} | {r['base_rss_mb'] or '-'} | "
                     f"{r['data_peak_mb'] or '-'} | {passes} | {r['batches'] or '-'} | {r.get('processes') or '-'} | {same} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
