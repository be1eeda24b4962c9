"""Markdown report and PNG plots from one benchmark record."""

from __future__ import annotations

from pathlib import Path


def _table(headers: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def headline(record: dict) -> list[str]:
    """Seconds per tool and size, and dedup's speed-up over each peer, measured in the same run."""
    res = record["results"]
    sizes = sorted({r["docs"] for r in res})
    tools = list(dict.fromkeys(r["tool"] for r in res))
    by = {(r["tool"], r["docs"]): r for r in res}
    rows = []
    for t in tools:
        cells = [t]
        for n in sizes:
            r = by.get((t, n))
            if r is None:
                cells.append("-")
                continue
            d = by.get(("dedup", n))
            ratio = f" ({r['seconds_median'] / d['seconds_median']:.1f}x dedup)" if d and t != "dedup" else ""
            cells.append(f"{r['seconds_median']:.2f} s{ratio}")
        rows.append(cells)
    return _table(["tool"] + [f"{n:,} docs" for n in sizes], rows)


def write_report(record: dict, md_path: Path, fig_dir: Path) -> None:
    res = record["results"]
    lines = [
        f"# dedup benchmark {record['date']} ({record['commit']})",
        "",
        f"Command: `{record['command']}`; seed {record['seed']}; {record['platform']}, {record['cpu_count']} CPUs.",
        "",
        f"Corpus: {record['params']['corpus']}. Every tool: {record['params']['shingles']}, "
        f"{record['params']['num_perm']} permutations, LSH {record['params']['bands']} bands x {record['params']['rows']} rows, "
        f"threshold {record['params']['threshold']}. dedup also verifies each candidate (exact Jaccard and rapidfuzz ratio); "
        "the peers report raw LSH components. rensa uses its own hash and permutations (R-MinHash), so its signatures differ.",
        "",
        "## Time (median of repeats; ratio = tool's time over dedup's time in the same run)",
        "",
    ]
    lines += headline(record)
    lines += ["", "## Quality against the ground truth, and peak memory", ""]
    rows = []
    for r in res:
        rows.append([
            r["tool"], f"{r['docs']:,}",
            f"{r['pair_precision']:.4f}" if "pair_precision" in r else "-",
            f"{r['pair_recall']:.4f}" if "pair_recall" in r else "-",
            f"{r['adjusted_rand_index']:.4f}" if "adjusted_rand_index" in r else "-",
            f"{r['strong_pair_recall']:.4f} of {r['strong_pairs']}" if "strong_pair_recall" in r else "-",
            f"{r['peak_rss_mb']:.0f} MB",
        ])
    lines += _table(["tool", "docs", "pair precision", "pair recall", "ARI", "recall of pairs with Jaccard >= threshold + 0.05", "peak RSS"], rows)
    rate_keys = sorted({k for r in res for k in r if k.startswith("copies_found_at_")}, key=lambda k: float(k.rsplit("_", 1)[1]))
    if rate_keys:
        lines += ["", "## Copies found with their original, by edit rate", ""]
        lines += _table(["tool", "docs"] + [f"{float(k.rsplit('_', 1)[1]):.0%} edits" for k in rate_keys],
                        [[r["tool"], f"{r['docs']:,}"] + [f"{r[k]:.3f}" for k in rate_keys] for r in res if rate_keys[0] in r])
    stage_rows = [[f"{r['docs']:,}"] + [f"{v:.2f}" for v in r["stages"].values()] for r in res if r["tool"] == "dedup" and r["stages"]]
    if stage_rows:
        names = [k.replace("_seconds", "") for k in next(r for r in res if r["tool"] == "dedup")["stages"]]
        lines += ["", "## dedup per step (seconds, last repeat)", ""] + _table(["docs"] + names, stage_rows)
    lines += [
        "",
        "Pair recall counts every pair of documents that copy the same original. A 10% word-edit rate puts a",
        "copy near word-3-gram Jaccard 0.5, below the 0.7 threshold: dedup verifies every candidate against",
        "the threshold and leaves such copies apart, while the peers' LSH components (32 x 4 bands, S-curve",
        "midpoint near Jaccard 0.42, no verification) take them in. That is why the peers' pair recall is",
        "higher here and why, on real text, their precision is lower; the column that asks every tool the",
        "same question is the recall of pairs whose exact Jaccard is at least threshold + 0.05.",
    ]
    figs = _plots(record, fig_dir)
    if figs:
        lines += [""] + [f"![{name}]({fig_dir.name}/{name})" for name in figs]
    md_path.write_text("\n".join(lines) + "\n")


def _plots(record: dict, fig_dir: Path) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    fig_dir.mkdir(parents=True, exist_ok=True)
    res = record["results"]
    names: list[str] = []

    def save(fig, ax, name: str, title: str, xlabel: str, ylabel: str = "", legend: bool = False) -> None:
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        if ylabel:
            ax.set_ylabel(ylabel)
        if legend:
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(fig_dir / name, dpi=110)
        plt.close(fig)
        names.append(name)

    fig, ax = plt.subplots(figsize=(6, 4))
    for tool in dict.fromkeys(r["tool"] for r in res):
        pts = sorted((r["docs"], r["docs"] / r["seconds_median"]) for r in res if r["tool"] == tool)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=tool)
    ax.set_xscale("log")
    ax.set_yscale("log")
    save(fig, ax, "throughput.png", "Throughput (signatures + LSH + clustering)", "documents", "documents per second", legend=True)
    biggest = max(r["docs"] for r in res)
    at = [r for r in res if r["docs"] == biggest]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.barh([r["tool"] for r in at], [r["peak_rss_mb"] for r in at])
    save(fig, ax, "memory.png", f"Peak memory at {biggest:,} documents", "peak RSS, MB")
    stages = [r for r in res if r["tool"] == "dedup" and r["stages"]]
    if stages:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        left = [0.0] * len(stages)
        for key in stages[0]["stages"]:
            vals = [r["stages"][key] for r in stages]
            ax.barh([f"{r['docs']:,}" for r in stages], vals, left=left, label=key.replace("_seconds", ""))
            left = [a + b for a, b in zip(left, vals)]
        save(fig, ax, "stages.png", "dedup: time per step", "seconds", "documents", legend=True)
    return names
