"""Evaluate the garble scorer on every labelled set we have, and (with ``--fit``) refit its calibration.

    python -m benchmarks.garble_eval                      # evaluate; results under benchmarks/results/
    python -m benchmarks.garble_eval --fit                # refit dedup/garble_calibration.json, then evaluate

Sets (read from ``../shared/data`` and the project's ``tests/data``):

* seed caption pairs (``tests/data/seed_garble.json``, 22 pairs labelled by us): precision and recall
  of the ``garbled`` verdict. The paraphrase curve is fitted on these pairs, so each pair is judged
  with a curve fitted on the other 21 (leave-one-out): no pair's verdict uses its own label.
* seed unpaired: the intrinsic garbles labelled in the body, and the share of clean passages flagged.
* FRANK (``frank/valid.jsonl``): article as original, model summary as rewrite, "factual" when every
  sentence was judged factual. Balanced accuracy of the verdict with the summary curve fitted on
  the other half of the articles (two folds split by article, so no article is on both sides).
* MRPC (``mrpc/train.tsv``): ROC AUC of the score for "not a paraphrase", and the share of true
  paraphrases flagged (no fitting on MRPC at all).

Also: per-type firing counts and precision, cost per 1,000 passages, and the reliability curve of the
out-of-fold FRANK probabilities (a PNG when matplotlib is installed: ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np

from dedup import garble as G

from .run import _commit

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
SEED = ROOT / "seeds" / "000_729590aafbbb308c.txt"
LABELS = ROOT / "tests" / "data" / "seed_garble.json"


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------


def seed_passages():
    """The seed's passages (normalised text) and the result of cleaning it."""
    from dedup.pipeline import clean

    result = clean(SEED)
    return result.passages["passage_text"].to_list(), result


def frank_rows(path: Path | None = None) -> list[dict]:
    path = path or SHARED / "frank" / "valid.jsonl"
    return [json.loads(line) for line in path.open(encoding="utf-8")]


def mrpc_rows(path: Path | None = None) -> list[tuple[int, str, str]]:
    """(label, sentence1, sentence2); the file escapes double quotes as \\"."""
    path = path or SHARED / "mrpc" / "train.tsv"
    out = []
    with path.open(encoding="utf-8-sig") as fh:
        next(fh)
        for line in fh:
            label, _, _, s1, s2 = line.rstrip("\n").split("\t")
            out.append((int(label), s1.replace('\\"', '"'), s2.replace('\\"', '"')))
    return out


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------


def roc_auc(scores, positives) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(positives, dtype=bool)
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    n_pos, n_neg = y.sum(), (~y).sum()
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def balanced_accuracy(pred, truth) -> float:
    p = np.asarray(pred, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    return float(0.5 * ((p & t).sum() / t.sum() + (~p & ~t).sum() / (~t).sum()))


def precision_recall(pred, truth) -> tuple[float, float]:
    p = np.asarray(pred, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    tp = (p & t).sum()
    return float(tp / max(1, p.sum())), float(tp / max(1, t.sum()))


def reliability(probs, truth, bins: int = 10) -> list[dict]:
    """Mean predicted probability against the observed share of positives per probability bin.

    The scores are probabilities at even odds (both classes weighted equally when fitting), so the
    observed share is taken at even odds too: each positive weighs 1/(2 * positives), each negative
    1/(2 * negatives). ``observed_raw`` is the plain share, which carries the set's base rate.
    """
    p = np.asarray(probs, dtype=float)
    t = np.asarray(truth, dtype=bool)
    w = np.where(t, 1 / (2 * t.sum()), 1 / (2 * (~t).sum()))
    out = []
    for k in range(bins):
        lo, hi = k / bins, (k + 1) / bins
        m = (p >= lo) & ((p < hi) if k < bins - 1 else (p <= hi))
        if m.any():
            out.append({"bin": f"{lo:.1f}-{hi:.1f}", "n": int(m.sum()), "mean_predicted": round(float(p[m].mean()), 3),
                        "observed": round(float((w[m] * t[m]).sum() / w[m].sum()), 3),
                        "observed_raw": round(float(t[m].mean()), 3)})
    return out


# ---------------------------------------------------------------------------------------------
# evaluations
# ---------------------------------------------------------------------------------------------


def seed_pairs_eval(passages: list[str]) -> dict:
    labels = json.loads(LABELS.read_text(encoding="utf-8"))["pairs"]
    ctx = G.Context.from_texts(passages)
    verdicts = [G.score_pair(passages[p["original"]], passages[p["second"]], context=ctx) for p in labels]
    raws = [v.raw for v in verdicts]
    truth = [p["label"] == "garbled" for p in labels]
    loo = []
    for i in range(len(labels)):
        cal = G.fit_platt([r for j, r in enumerate(raws) if j != i], [t for j, t in enumerate(truth) if j != i])
        loo.append(G.calibrate(raws[i], calibration=cal))
    pred = [p >= 0.5 for p in loo]
    prec, rec = precision_recall(pred, truth)
    rows, hits = [], Counter()
    for p, v, s, t in zip(labels, verdicts, loo, truth):
        want = Counter(d["type"] for d in p["distortions"])
        got = Counter(r.type for r in v.reasons if r.type in G.PAIRED_TYPES or r.type in G.UNPAIRED_TYPES)
        for typ, n in want.items():
            hits[(typ, "labelled")] += n
            hits[(typ, "found")] += min(n, got.get(typ, 0))
        rows.append({"original": p["original"], "second": p["second"], "label": p["label"], "score_loo": round(s, 3),
                     "raw": round(v.raw, 3), "verdict": "garbled" if s >= 0.5 else "faithful",
                     "reasons": [f"{r.type}: {r.explanation}" for r in v.reasons]})
    per_type = {t: {"labelled": hits[(t, "labelled")], "found": hits[(t, "found")]} for t, k in sorted({k for k in hits}) if k == "labelled"}
    return {"pairs": len(labels), "garbled": int(sum(truth)), "precision": round(prec, 3), "recall": round(rec, 3),
            "per_type_recall": per_type, "rows": rows}


def seed_unpaired_eval(result) -> dict:
    import polars as pl

    data = json.loads(LABELS.read_text(encoding="utf-8"))
    seconds = {p["second"] for p in data["pairs"]}
    want = {u["passage"]: u["type"] for u in data["unpaired"]}
    frame = result.passages.filter(~pl.col("passage").is_in(list(seconds)) & (pl.col("kind") != "fragment"))
    flagged, clean_flagged, found, rows = 0, [], Counter(), []
    clean_n = 0
    for idx, label, reasons in frame.select("passage", "garble_label", "garble_reasons").iter_rows():
        types = {r["type"] for r in reasons}
        hit = label == "garbled"
        if idx in want:
            found[want[idx]] += want[idx] in types and hit
            rows.append({"passage": idx, "type": want[idx], "flagged": hit, "types_found": sorted(types)})
        else:
            clean_n += 1
            if hit:
                clean_flagged.append({"passage": idx, "types_found": sorted(types)})
        flagged += hit
    by_type = Counter(want.values())
    return {
        "labelled_garbles": len(want),
        "found": int(sum(found.values())),
        "per_type": {t: {"labelled": n, "found": int(found[t])} for t, n in sorted(by_type.items())},
        "clean_passages": clean_n,
        "clean_flagged": len(clean_flagged),
        "clean_flagged_rate": round(len(clean_flagged) / max(1, clean_n), 4),
        "clean_flagged_examples": clean_flagged,
        "rows": rows,
    }


_FRANK_TYPES = ("RelE", "EntE", "CircE", "OutE", "GramE", "CorefE", "LinkE", "Other")


def frank_scores(rows: list[dict]) -> list[G.Verdict]:
    return [G.score_pair(r["article"], r["summary"]) for r in rows]


def frank_eval(rows: list[dict], verdicts: list[G.Verdict]) -> dict:
    truth = np.array([r["Factuality"] < 1.0 for r in rows])
    raws = np.array([v.raw for v in verdicts])
    articles = sorted({r["hash"] for r in rows})
    fold_of = {h: k % 2 for k, h in enumerate(articles)}
    fold = np.array([fold_of[r["hash"]] for r in rows])
    probs = np.zeros(len(rows))
    for k in (0, 1):
        cal = G.fit_platt(raws[fold != k], truth[fold != k])
        probs[fold == k] = [G.calibrate(x, calibration=cal) for x in raws[fold == k]]
    pred = probs >= 0.5
    by_dataset = {}
    for name in sorted({r["dataset"] for r in rows}):
        m = np.array([r["dataset"] == name for r in rows])
        by_dataset[name] = {"n": int(m.sum()), "unfactual": int(truth[m].sum()),
                            "flagged": int(pred[m].sum()), "accuracy": round(float((pred[m] == truth[m]).mean()), 3)}
    # FRANK's error types: how many summaries with each type the verdict catches
    per_error = {}
    for t in _FRANK_TYPES:
        m = np.array([r[t] < 1.0 for r in rows])
        per_error[t] = {"summaries": int(m.sum()), "flagged": int((pred & m).sum()),
                        "recall": round(float((pred & m).sum() / max(1, m.sum())), 3)}
    return {
        "summaries": len(rows), "unfactual": int(truth.sum()), "articles": len(articles),
        "balanced_accuracy": round(balanced_accuracy(pred, truth), 4),
        "roc_auc": round(roc_auc(raws, truth), 4),
        "by_dataset": by_dataset,
        "recall_by_frank_error_type": per_error,
        "reason_types": _type_precision(verdicts, truth),
        "reliability": reliability(probs, truth),
        "_probs": probs, "_truth": truth,
    }


def mrpc_eval(rows: list[tuple[int, str, str]]) -> dict:
    verdicts = [G.score_pair(s1, s2) for _, s1, s2 in rows]
    non_para = np.array([label == 0 for label, _, _ in rows])
    scores = np.array([v.score for v in verdicts])
    flagged = scores >= 0.5
    return {
        "pairs": len(rows), "non_paraphrases": int(non_para.sum()),
        "roc_auc_non_paraphrase": round(roc_auc(scores, non_para), 4),
        "paraphrases_flagged_rate": round(float(flagged[~non_para].mean()), 4),
        "non_paraphrases_flagged_rate": round(float(flagged[non_para].mean()), 4),
        "reason_types": _type_precision(verdicts, non_para),
    }


def _type_precision(verdicts, truth) -> dict:
    """For each reason type: how often it fires, and the share of those items that are positives."""
    fired, pos = Counter(), Counter()
    for v, t in zip(verdicts, truth):
        for typ in {r.type for r in v.reasons}:
            fired[typ] += 1
            pos[typ] += bool(t)
    base = float(np.mean(truth))
    return {"base_rate": round(base, 3),
            **{t: {"fired": n, "precision": round(pos[t] / n, 3)} for t, n in fired.most_common()}}


def cost(passages: list[str], n_pairs: int = 2000) -> dict:
    """Seconds per 1,000 passages, unpaired (seed passages, document context) and paired (MRPC)."""
    ctx = G.Context.from_texts(passages)
    reps = max(1, 2000 // len(passages))
    t0 = time.perf_counter()
    for _ in range(reps):
        for p in passages:
            G.score_text(p, context=ctx)
    unpaired = (time.perf_counter() - t0) / (reps * len(passages)) * 1000
    rows = mrpc_rows()[:n_pairs]
    t0 = time.perf_counter()
    for _, s1, s2 in rows:
        G.score_pair(s1, s2)
    paired = (time.perf_counter() - t0) / len(rows) * 1000
    return {"unpaired_seconds_per_1000": round(unpaired, 3), "paired_seconds_per_1000": round(paired, 3)}


def share_of_clean(path: Path) -> dict:
    """The garble stage's share of a whole ``dedup clean`` run (stats of the pipeline itself)."""
    from dedup.pipeline import clean

    result = clean(path)
    st = result.stats
    return {"input": str(path), "passages": st["segment"]["passages"], "garble_seconds": st["garble"]["seconds"],
            "total_seconds": st["total_seconds"], "share": round(st["garble"]["seconds"] / st["total_seconds"], 4),
            "garbled_by_mode": st["garble"]["garbled_by_mode"], "by_label": st["garble"]["by_label"],
            "reasons_by_type": st["garble"]["reasons_by_type"]}


# ---------------------------------------------------------------------------------------------
# fit, report, main
# ---------------------------------------------------------------------------------------------


def fitted_calibration(passages: list[str], frank: list[dict]) -> dict:
    """Both curves fitted on all their labelled data (what ships in dedup/garble_calibration.json)."""
    labels = json.loads(LABELS.read_text(encoding="utf-8"))["pairs"]
    ctx = G.Context.from_texts(passages)
    raws = [G.score_pair(passages[p["original"]], passages[p["second"]], context=ctx).raw for p in labels]
    para = G.fit_platt(raws, [p["label"] == "garbled" for p in labels])
    fr = frank_scores(frank)
    summ = G.fit_platt([v.raw for v in fr], [r["Factuality"] < 1.0 for r in frank])
    cal = {
        "summary": {**{k: round(v, 6) for k, v in summ.items()},
                    "fitted_on": f"FRANK valid: {len(frank)} summaries, unfactual = any sentence judged unfactual; classes weighted equally"},
        "paraphrase": {**{k: round(v, 6) for k, v in para.items()},
                       "fitted_on": f"seed article: {len(labels)} caption pairs of tests/data/seed_garble.json; classes weighted equally"},
        "method": "Platt scaling of the raw noisy-or score (dedup.garble.fit_platt: each class weighs 1/2, L2 = 0.002 on the slope)",
    }
    return cal


def fit(passages: list[str], frank: list[dict]) -> dict:
    """Refit and write dedup/garble_calibration.json; the running process uses the new curves."""
    cal = fitted_calibration(passages, frank)
    G._CALIBRATION_FILE.write_text(json.dumps(cal, indent=2) + "\n", encoding="utf-8")
    G.CALIBRATION.clear()
    G.CALIBRATION.update(cal)
    return cal


def plot_reliability(frank: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rel = frank["reliability"]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    ax.plot([r["mean_predicted"] for r in rel], [r["observed"] for r in rel], marker="o", label="dedup (FRANK, out of fold)")
    for r in rel:
        ax.annotate(str(r["n"]), (r["mean_predicted"], r["observed"]), fontsize=7, xytext=(3, -9), textcoords="offset points")
    ax.set_xlabel("garble_score (mean per bin)")
    ax.set_ylabel("share unfactual (at even odds)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("Reliability of garble_score", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def markdown(res: dict) -> str:
    sp, su, fr, mr, co = res["seed_pairs"], res["seed_unpaired"], res["frank"], res["mrpc"], res["cost"]
    lines = [
        f"# Garble scorer evaluation ({res['date']}, commit {res['commit']})",
        "",
        f"Command: `{res['command']}`",
        "",
        "| set | measure | value | target |",
        "|---|---|---|---|",
        f"| seed caption pairs ({sp['pairs']}, {sp['garbled']} garbled) | precision / recall of `garbled` (leave-one-out curve) | {sp['precision']:.3f} / {sp['recall']:.3f} | >= 0.9 / >= 0.9 |",
        f"| seed, unpaired | labelled intrinsic garbles flagged | {su['found']} / {su['labelled_garbles']} | all |",
        f"| seed, unpaired | clean passages flagged | {su['clean_flagged']} / {su['clean_passages']} ({100 * su['clean_flagged_rate']:.1f}%) | <= 5% |",
        f"| FRANK valid ({fr['summaries']} summaries, {fr['unfactual']} unfactual) | balanced accuracy (2-fold by article) | {fr['balanced_accuracy']:.3f} | >= 0.65 |",
        f"| FRANK valid | ROC AUC of the raw score | {fr['roc_auc']:.3f} | |",
        f"| MRPC train ({mr['pairs']} pairs) | ROC AUC for non-paraphrase | {mr['roc_auc_non_paraphrase']:.3f} | side measure |",
        f"| MRPC train | true paraphrases flagged | {100 * mr['paraphrases_flagged_rate']:.1f}% | side measure |",
        f"| cost | seconds per 1,000 passages, unpaired / paired | {co['unpaired_seconds_per_1000']:.3f} / {co['paired_seconds_per_1000']:.3f} | |",
    ]
    if "share" in res:
        sh = res["share"]
        lines.append(f"| share of `dedup clean` ({Path(sh['input']).name}, {sh['passages']} passages) | garble stage / whole run | "
                     f"{sh['garble_seconds']:.2f} s / {sh['total_seconds']:.2f} s ({100 * sh['share']:.1f}%) | must not dominate |")
    lines += ["", "## Seed caption pairs, per labelled distortion type (found / labelled)", ""]
    lines += [f"- {t}: {v['found']} / {v['labelled']}" for t, v in sp["per_type_recall"].items()]
    lines += ["", "## Seed unpaired, per type (found / labelled)", ""]
    lines += [f"- {t}: {v['found']} / {v['labelled']}" for t, v in su["per_type"].items()]
    if su["clean_flagged_examples"]:
        lines += ["", "Clean passages flagged: " + ", ".join(f"{e['passage']} ({', '.join(e['types_found'])})" for e in su["clean_flagged_examples"])]
    lines += ["", "## FRANK: recall by FRANK error type (summaries with that error that are flagged)", "",
              "| FRANK type | summaries | flagged | recall |", "|---|---|---|---|"]
    lines += [f"| {t} | {v['summaries']} | {v['flagged']} | {v['recall']:.3f} |" for t, v in fr["recall_by_frank_error_type"].items()]
    for name, block in (("FRANK (positive = unfactual)", fr["reason_types"]), ("MRPC (positive = not a paraphrase)", mr["reason_types"])):
        lines += ["", f"## Reason types on {name}: how often each fires and its precision (base rate {block['base_rate']})", "",
                  "| type | fired | precision |", "|---|---|---|"]
        lines += [f"| {t} | {v['fired']} | {v['precision']:.3f} |" for t, v in block.items() if t != "base_rate"]
    lines += ["", "## Reliability (FRANK, out-of-fold probabilities)", "",
              "Observed = share unfactual at even odds (classes weighted equally, as the curve was fitted); "
              "raw = the plain share, which carries FRANK's 64% base rate.", "",
              "| bin | n | mean predicted | observed (even odds) | observed (raw) |", "|---|---|---|---|---|"]
    lines += [f"| {r['bin']} | {r['n']} | {r['mean_predicted']:.3f} | {r['observed']:.3f} | {r['observed_raw']:.3f} |" for r in fr["reliability"]]
    if res.get("plot"):
        lines += ["", f"![reliability]({res['plot']})"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit", action="store_true", help="refit dedup/garble_calibration.json first")
    ap.add_argument("--share-input", default=str(SHARED / "reuters" / "dev.jsonl.gz"),
                    help="corpus for the garble stage's share of a clean run ('' to skip)")
    ap.add_argument("--out", default=None, help="results folder (default benchmarks/results/garble-<date>-<commit>)")
    args = ap.parse_args(argv)

    passages, result = seed_passages()
    frank = frank_rows()
    if args.fit:
        print(json.dumps(fit(passages, frank), indent=2), file=sys.stderr)
        passages, result = seed_passages()
    res = {"date": date.today().isoformat(), "commit": _commit(),
           "command": "python -m benchmarks.garble_eval" + (" --fit" if args.fit else "")}
    res["seed_pairs"] = seed_pairs_eval(passages)
    res["seed_unpaired"] = seed_unpaired_eval(result)
    res["frank"] = frank_eval(frank, frank_scores(frank))
    res["mrpc"] = mrpc_eval(mrpc_rows())
    res["cost"] = cost(passages)
    if args.share_input:
        res["share"] = share_of_clean(Path(args.share_input))
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"garble-{res['date']}-{res['commit']}"
    out.mkdir(parents=True, exist_ok=True)
    if plot_reliability(res["frank"], out / "reliability.png"):
        res["plot"] = "reliability.png"
    for k in ("_probs", "_truth"):
        res["frank"].pop(k)
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(markdown(res), encoding="utf-8")
    print(markdown(res))
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
