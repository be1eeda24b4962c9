"""The whole `dedup clean` on the polars engine and on Spark, side by side, on the same corpora.

    python -m benchmarks.engines                           # Reuters dev + synthetic 20k and 50k docs
    python -m benchmarks.engines --sizes 20000 --master local[2]

Each run is a fresh process (``python -m dedup clean ... --engine X -q``), timed from start to exit;
peak RSS is summed over the run's whole process tree (for Spark: driver, JVM, Python workers),
sampled every 0.2 s. The two
engines' outputs are compared (a digest of every output file's rows, sorted): the report says
whether they agree. Results: ``benchmarks/results/engines-<date>-<commit>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import hashlib
import json
import platform
import subprocess
import sys
from pathlib import Path

import polars as pl

from .run import _commit, pinned

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
REUTERS = ROOT.parent / "shared" / "data" / "reuters" / "dev.jsonl.gz"
KEYS = {"cleaned": ["id"], "dropped": ["id"], "annotations": ["doc_id", "passage"]}


def read_output(path: Path, fmt: str) -> pl.DataFrame:
    """A local engine's output file, or the part files of a Spark output folder, as one frame."""
    files = sorted(glob.glob(str(path / "part-*"))) if path.is_dir() else [str(path)]
    reader = {"parquet": pl.read_parquet, "jsonl": pl.read_ndjson}[fmt]
    return pl.concat([reader(f) for f in files], how="diagonal_relaxed")


def digests(out: Path) -> dict[str, str]:
    """sha256 of each output's rows, columns and rows sorted, dtypes as the polars engine writes them."""
    res = {}
    for name, key in KEYS.items():
        fmt = "parquet" if name == "annotations" else "jsonl"
        frame = read_output(out / f"{name}.{'parquet' if fmt == 'parquet' else 'jsonl'}", fmt)
        frame = frame.select(sorted(frame.columns)).sort(key)
        res[name] = hashlib.sha256(frame.write_ndjson().encode()).hexdigest()
    return res


def run_once(engine: str, corpus: Path, out: Path, master: str) -> dict:
    cmd = [sys.executable, "-m", "dedup", "clean", str(corpus), "-o", str(out), "-q", "--format", "jsonl", "--engine", engine]
    if engine == "spark":
        cmd += ["--master", master]
    run = wrapped(cmd)
    stats = json.loads((out / "stats.json").read_text())
    return {"engine": engine, "seconds": round(run["seconds"], 2), "peak_rss_mb": round(run["peak_rss_mb"], 1),
            "records": stats["input"]["records"], "result": stats["result"], "command": " ".join(cmd[1:]),
            "phase_seconds": stats.get("engine", {}).get("phase_seconds")}


def wrapped(cmd: list[str], cores: int | None = None, cwd: Path | None = ROOT) -> dict:
    """Run ``cmd`` in a fresh wrapper process (so that its children's peak RSS is this run's alone),
    pinned to ``cores`` CPUs if given: its wall seconds, from its start until it exits (timed by the
    wrapper, so neither the wrapper's own start nor its pipes count), and the peak RSS of its process
    tree. It runs in ``cwd`` (None: this process's). A failed command stops the benchmark with its stderr."""
    env, pin = pinned(cores)
    proc = subprocess.run([sys.executable, "-c", _WRAP, *cmd], capture_output=True, text=True, cwd=cwd, env=env,
                          preexec_fn=pin)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    peak_kib, seconds = proc.stdout.split()[-2:]
    return {"seconds": float(seconds), "peak_rss_mb": int(peak_kib) / 1024}


# Runs the command, waits for it to exit, and prints the peak, over time, of the RSS summed over its
# whole process tree (for Spark: the driver, its JVM with the local executors, the Python workers),
# sampled every 0.2 s from /proc on a thread (the kernel's own peak of the largest waited-for process
# is the floor), then the seconds from its start to its exit.
_WRAP = """
import os, resource, subprocess, sys, threading, time
def tree_rss(root):
    kids, rss = {}, {}
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open(f'/proc/{pid}/stat') as fh:
                fields = fh.read().rsplit(')', 1)[1].split()
            kids.setdefault(int(fields[1]), []).append(int(pid))
            rss[int(pid)] = int(fields[21]) * os.sysconf('SC_PAGE_SIZE') // 1024
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += kids.get(p, [])
    return total
def sample():
    while True:
        peak[0] = max(peak[0], tree_rss(proc.pid))
        time.sleep(0.2)
peak = [0]
t0 = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
threading.Thread(target=sample, daemon=True).start()
code = proc.wait()
seconds = time.perf_counter() - t0
print(max(peak[0], resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss), seconds)
sys.exit(code)
"""


def synthetic(n: int, seed: int, cache: Path) -> Path:
    from .corpus import make_corpus, reuters_sentences

    path = cache / f"engines-corpus-{n}-{seed}.jsonl"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        make_corpus(reuters_sentences(REUTERS), n, seed).select("id", "text").write_ndjson(path)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[20000, 50000], help="synthetic corpus sizes (documents)")
    ap.add_argument("--no-reuters", action="store_true", help="skip the Reuters dev corpus")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=HERE / ".cache")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    corpora = ([("reuters dev", REUTERS)] if not args.no_reuters else []) + [
        (f"synthetic {n:,}", synthetic(n, args.seed, args.cache)) for n in args.sizes]
    rows = []
    for label, path in corpora:
        outs = {}
        for engine in ("polars", "spark"):
            out = args.cache / "engines-out" / f"{label.replace(' ', '-').replace(',', '')}-{engine}"
            r = run_once(engine, path, out, args.master)
            r["corpus"] = label
            outs[engine] = digests(out)
            rows.append(r)
            print(f"{label}: {engine} {r['seconds']} s, {r['peak_rss_mb']} MB", file=sys.stderr)
        same = outs["polars"] == outs["spark"]
        for r in rows[-2:]:
            r["outputs_identical"] = same
    res = {
        "date": dt.date.today().isoformat(), "commit": _commit(), "command": "python -m benchmarks.engines " + " ".join(argv or sys.argv[1:]),
        "platform": platform.platform(), "python": platform.python_version(), "cpu_count": __import__("os").cpu_count(),
        "master": args.master, "rows": rows,
    }
    try:
        import pyspark

        res["pyspark"] = pyspark.__version__
    except ImportError:
        pass
    stem = args.out / f"engines-{res['date']}-{res['commit']}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(res))
    print(markdown(res))
    return 0


def markdown(res: dict) -> str:
    lines = [f"# `dedup clean`: polars engine and Spark {res['master']} ({res['date']}, commit {res['commit']})", "",
             f"Command: `{res['command']}`; {res['platform']}, {res['cpu_count']} CPUs, Python {res['python']}, "
             f"pyspark {res.get('pyspark', '-')}.", "",
             "| corpus | records | engine | seconds | Spark / polars | peak RSS, whole process tree (MB) | outputs identical |",
             "|---|---:|---|---:|---:|---:|---|"]
    by = {(r["corpus"], r["engine"]): r for r in res["rows"]}
    for r in res["rows"]:
        base = by[(r["corpus"], "polars")]["seconds"]
        ratio = f"{r['seconds'] / base:.1f}x" if r["engine"] == "spark" else ""
        lines.append(f"| {r['corpus']} | {r['records']:,} | {r['engine']} | {r['seconds']:.1f} | {ratio} | {r['peak_rss_mb']:.0f} | "
                     f"{'yes' if r['outputs_identical'] else 'NO'} |")
    lines += ["", "Spark phases (seconds): " + "; ".join(
        f"{r['corpus']}: " + ", ".join(f"{k} {v:.1f}" for k, v in (r["phase_seconds"] or {}).items())
        for r in res["rows"] if r["engine"] == "spark")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
