"""The whole `dedup clean` beside `ftfy.fix_text` alone, on the same texts.

    python -m benchmarks.clean                      # Reuters dev and a 50k-document synthetic corpus
    python -m benchmarks.clean --repeats 3 --synthetic 20000

Issue 4 asks that the whole clean (normalise, segment, within-document pairs, corpus dedup, garble
scoring, outputs) be no slower than ftfy alone. Each measurement is a fresh process timed from start
to exit, so imports count for both: ``dedup clean`` on every core, on one core (pinned, one process),
and ``ftfy.fix_text`` over every text of the same JSONL on one core (ftfy is pure Python: one core is
all it uses). Peak RSS is the process tree's. Writes ``results/clean-<date>-<commit>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
from pathlib import Path

from .engines import REUTERS, wrapped
from .run import _commit, _versions

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

_FTFY = """
import gzip, json, sys
import ftfy
path = sys.argv[1]
opener = gzip.open if path.endswith('.gz') else open
with opener(path, 'rt', encoding='utf-8') as fh:
    texts = [json.loads(line).get('text') or '' for line in fh if line.strip()]
for t in texts:
    ftfy.fix_text(t)
"""


FTFY_RUN = "ftfy.fix_text alone (1 core)"  # the baseline run: every ratio divides by its seconds


def measure(corpus: Path, out: Path, repeats: int) -> list[dict]:
    runs = {
        "dedup clean (all cores)": ([sys.executable, "-m", "dedup", "clean", str(corpus), "-o", str(out), "-q"], None),
        "dedup clean (1 core)": ([sys.executable, "-m", "dedup", "clean", str(corpus), "-o", str(out), "-q",
                                  "--set", "engine.processes=1"], 1),
        FTFY_RUN: ([sys.executable, "-c", _FTFY, str(corpus)], 1),
    }
    # round robin, so that a machine that slows down or speeds up over minutes weighs on every run alike
    got: dict[str, list[dict]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (cmd, cores) in runs.items():
            timed = wrapped(cmd, cores)
            if name.startswith("dedup"):
                stats = json.loads((out / "stats.json").read_text())
                timed["stage_seconds"] = {k: v["seconds"] for k, v in stats.items() if isinstance(v, dict) and "seconds" in v}
            got[name].append(timed)
    rows = []
    for name, (cmd, cores) in runs.items():
        times = got[name]
        row = {"run": name, "seconds_median": statistics.median(g["seconds"] for g in times),
               "seconds_all": [round(g["seconds"], 2) for g in times], "peak_rss_mb": max(g["peak_rss_mb"] for g in times),
               # each round's own ratio to the ftfy run of that round: drift between rounds cancels
               "per_round_ratio_median": statistics.median(
                   g["seconds"] / f["seconds"] for g, f in zip(times, got[FTFY_RUN])),
               "command": " ".join(cmd[1:] if cmd[0] == sys.executable else cmd)}
        # the stages of the run whose time is the median (the last run's could be a slow round's)
        median_run = sorted(times, key=lambda g: g["seconds"])[(len(times) - 1) // 2]
        if "stage_seconds" in median_run:
            row["stage_seconds"] = median_run["stage_seconds"]
        rows.append(row)
        print(f"{corpus.name:<28} {name:<30} {row['seconds_median']:7.2f} s {row['peak_rss_mb']:7.0f} MB", file=sys.stderr)
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="dedup clean beside ftfy alone")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--corpora", type=Path, nargs="*", default=[REUTERS], help="JSONL corpora (default Reuters dev)")
    ap.add_argument("--synthetic", type=int, default=50_000, help="documents in the synthetic corpus (0: none)")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--cache", type=Path, default=HERE / ".cache")
    args = ap.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    corpora = list(args.corpora)
    if args.synthetic:
        from .engines import synthetic

        corpora.append(synthetic(args.synthetic, 0, args.cache))
    results = {}
    for corpus in corpora:
        results[corpus.name] = measure(corpus, args.cache / "clean-out", args.repeats)
    stamp = f"{dt.date.today().isoformat()}-{_commit()}"
    record = {"date": dt.datetime.now().isoformat(timespec="seconds"), "commit": _commit(),
              "command": "python -m benchmarks.clean " + " ".join(sys.argv[1:] if argv is None else argv),
              "platform": platform.platform(), "cpu_count": os.cpu_count(), "versions": _versions(), "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"clean-{stamp}.json").write_text(json.dumps(record, indent=1) + "\n")
    lines = [f"# dedup clean beside ftfy alone, {record['date']} ({record['commit']})", "",
             f"Command: `{record['command']}`; {record['platform']}, {record['cpu_count']} CPUs. Medians of "
             f"{args.repeats}; each run a fresh process, timed from start to exit; the runs take turns, round by "
             "round, and the last column is the median of each round's own ratio.", ""]
    for corpus, rows in results.items():
        ftfy_s = next(r["seconds_median"] for r in rows if r["run"] == FTFY_RUN)
        lines += [f"## {corpus}", "", "| run | seconds | / ftfy alone | / ftfy, same round | peak RSS |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {r['run']} | {r['seconds_median']:.2f} | {r['seconds_median'] / ftfy_s:.2f}x | "
                  f"{r['per_round_ratio_median']:.2f}x | {r['peak_rss_mb']:.0f} MB |" for r in rows]
        stages = next((r["stage_seconds"] for r in rows if r["run"] == "dedup clean (1 core)"), None)
        if stages:
            lines += ["", "Seconds per stage, one core (its median run): " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()), ""]
    (args.out / f"clean-{stamp}.md").write_text("\n".join(lines) + "\n")
    print(args.out / f"clean-{stamp}.md")


if __name__ == "__main__":
    main()
