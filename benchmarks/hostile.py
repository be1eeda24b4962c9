"""One 50 MB "article": how long `dedup clean` takes and how much memory it needs.

    python -m benchmarks.hostile [--mb 50]

The document is Reuters dev's stories glued together with blank lines (so boilerplate lines and
re-sent stories repeat by the thousand inside it), written as one JSONL record. The run is a fresh
process; peak RSS is summed over its process tree (sampled, as in ``benchmarks.engines``). Results:
``benchmarks/results/hostile-<date>-<commit>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import sys
from pathlib import Path

from .engines import REUTERS, wrapped
from .run import _commit

HERE = Path(__file__).resolve().parent


def huge_document(mb: int, cache: Path) -> Path:
    path = cache / f"huge-{mb}mb.jsonl"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    stories = [json.loads(line)["text"] for line in gzip.open(REUTERS, "rt", encoding="utf-8")]
    parts, size, k = [], 0, 0
    while size < mb * 1_000_000:
        parts.append(stories[k % len(stories)])
        size += len(parts[-1]) + 2
        k += 1
    path.write_text(json.dumps({"id": "huge", "text": "\n\n".join(parts)}) + "\n", encoding="utf-8")
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--cache", type=Path, default=HERE / ".cache")
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args(argv)
    src = huge_document(args.mb, args.cache)
    out = args.cache / "hostile-out"
    cmd = [sys.executable, "-m", "dedup", "clean", str(src), "-o", str(out), "-q"]
    timed = wrapped(cmd, cwd=None)
    stats = json.loads((out / "stats.json").read_text())
    res = {
        "date": dt.date.today().isoformat(), "commit": _commit(), "command": f"python -m benchmarks.hostile --mb {args.mb}",
        "document_chars": src.stat().st_size, "seconds": round(timed["seconds"], 1),
        "peak_rss_mb": round(timed["peak_rss_mb"]), "result": stats["result"],
        "passages": stats["segment"]["passages"], "pairs": {k: v for k, v in stats["pairs"].items() if k != "seconds"},
        "stage_seconds": {k: stats[k]["seconds"] for k in ("normalise", "segment", "pairs", "garble", "cluster", "output")},
    }
    stem = args.out / f"hostile-{res['date']}-{res['commit']}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    md = (f"# One {args.mb} MB document ({res['date']}, commit {res['commit']})\n\n`{res['command']}`: "
          f"{res['seconds']} s, peak RSS {res['peak_rss_mb']} MB (process tree), {res['passages']:,} passages, "
          f"result {res['result']}; per stage: " + ", ".join(f"{k} {v:.1f} s" for k, v in res["stage_seconds"].items()) + "\n")
    stem.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
