"""A Markdown report a person can read: counts, what was fixed, what was paired and clustered, with examples."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from . import schema as S

if TYPE_CHECKING:
    from .config import PipelineConfig


def _md(text: str | None, limit: int = 160, fold: bool = True) -> str:
    """Scraped text made safe for a Markdown table cell: escaped, one line, shortened."""
    if text is None:
        return ""
    text = " ".join(str(text).split()) if fold else str(text).replace("\n", " ")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    for ch in "\\`*_[]<>|#":
        text = text.replace(ch, "\\" + ch)
    return text


def _by_count(counts: dict[str, int]) -> list[tuple[str, int]]:
    """A table's rows, most frequent first, ties by name: the same however the counts were summed."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def report_samples(docs: pl.DataFrame, passages: pl.DataFrame, n_ex: int) -> dict[str, pl.DataFrame]:
    """The few rows the report shows as examples, picked from a document frame and its passages.

    Every pick is a total order (ties go to the earlier row) or the first rows in input order, so the
    samples of the batches of a corpus, merged with :func:`merge_samples`, are the samples of the
    whole corpus.
    """
    changes = docs.select(S.ROW, S.DOC_ID, S.NORM_CHANGES).explode(S.NORM_CHANGES).drop_nulls(S.NORM_CHANGES).unnest(S.NORM_CHANGES)
    seconds = passages.filter(pl.col(S.P_ROLE).is_in(["rewrite", "verbatim"]))
    originals = passages.select(S.ROW, pl.col(S.P_INDEX).alias(S.P_PARTNER), pl.col(S.P_TEXT).alias("original_text"))
    pairs = seconds.join(originals, on=[S.ROW, S.P_PARTNER], how="left").select(
        S.ROW, S.DOC_ID, S.P_INDEX, S.P_PARTNER, S.P_PAIR_KIND, S.P_ROLE, S.P_SIMILARITY, S.P_TEXT, "original_text", S.P_ACTION)
    garbled = passages.filter(pl.col(S.G_LABEL) == "garbled").select(S.ROW, S.DOC_ID, S.P_INDEX, S.G_MODE, S.G_SCORE, S.G_REASONS, S.P_TEXT)
    near = docs.filter(pl.col(S.DUP_KIND) == "near").select(S.ROW, S.DOC_ID, S.DUPLICATE_OF, S.KEPT_ROW, S.DUP_SIMILARITY, S.TEXT_NORM)
    return _pick({"changes": changes, "pairs": pairs, "garbled": garbled, "near": near}, n_ex)


def merge_samples(parts: list[dict[str, pl.DataFrame]], n_ex: int) -> dict[str, pl.DataFrame]:
    """The samples of several batches (in input order) as one: what the whole corpus would give."""
    if not parts:
        return {}
    return _pick({k: pl.concat([p[k] for p in parts], how="vertical_relaxed") for k in parts[0]}, n_ex)


def _pick(frames: dict[str, pl.DataFrame], n_ex: int) -> dict[str, pl.DataFrame]:
    changes = frames["changes"]
    firsts = [
        changes.filter(pl.col("fixer") == fixer).unique(subset=["before", "after"], keep="first", maintain_order=True).head(n_ex)
        for fixer in changes["fixer"].unique(maintain_order=True).to_list()
    ]
    picked = {
        "changes": pl.concat(firsts) if firsts else changes.head(0),
        "pairs": frames["pairs"].sort(S.P_PAIR_KIND, S.P_SIMILARITY, S.ROW, S.P_INDEX).head(n_ex * 2),
        "garbled": frames["garbled"].sort([S.G_SCORE, S.ROW, S.P_INDEX], descending=[True, False, False]).head(n_ex * 2),
        "near": frames["near"].sort(S.DUP_SIMILARITY, S.ROW).head(n_ex),
    }
    # rebuilt from their values: a few rows picked from a batch must not keep the batch's text
    # buffers alive (polars' string columns are views into shared buffers)
    return {k: pl.DataFrame(f.to_dicts(), schema=f.schema) for k, f in picked.items()}


def markdown_report(stats: dict, config: PipelineConfig, samples: dict[str, pl.DataFrame], kept_texts: dict[int, str]) -> str:
    """The report, from a run's stats and :func:`report_samples` (``kept_texts``: the text of each
    near duplicate's kept copy, by row)."""
    st = stats
    n_ex = config.output.report_examples
    lines = [f"# dedup report: {_md(st['input'].get('source', ''))}", ""]
    res = st["result"]
    lines += [
        "## Summary",
        "",
        "| | records |",
        "|---|---:|",
        f"| input | {st['input']['records']} |",
        f"| kept | {res['kept']} |",
        f"| dropped | {res['dropped']} |",
    ]
    lines += [f"| dropped: {reason} | {n} |" for reason, n in _by_count(res["dropped_by_reason"])]
    lines += ["", f"Every input record is either kept or dropped with a reason: {res['kept']} + {res['dropped']} = {st['input']['records']}.", ""]
    dup = st["input"].get("duplicate_ids")
    if dup and dup["ids"]:
        shown = "; ".join(f"{_md(e['id'], 40)} (lines {', '.join(map(str, e['lines']))})" for e in dup["examples"])
        lines += [f"{dup['ids']} ids are given to more than one record ({dup['records']} records; each is still "
                  f"judged on its own, but joining outputs back by id would mix them): {shown}.", ""]

    norm = st["normalise"]
    lines += ["## Normalisation", "", f"{norm['documents_changed']} documents changed, {norm['changes']} changes in all."]
    if norm.get("decode_errors"):
        lines.append(f"{norm['decode_errors']} records had bytes that were not UTF-8; they were read as Windows-1252 and flagged (`decode_error`).")
    lines += ["", "| fixer | documents |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in _by_count(norm["documents_by_fixer"])]
    changes = samples["changes"]
    if changes.height and n_ex:
        lines += ["", "Examples (raw offsets):", "", "| document | fixer | at | before | after |", "|---|---|---|---|---|"]
        for fixer in changes["fixer"].unique(maintain_order=True).to_list():
            for r in changes.filter(pl.col("fixer") == fixer).iter_rows(named=True):
                at = f"{r['raw_start']}-{r['raw_end']}"
                detail = f"{fixer} ({r['detail']})" if r["detail"] else fixer
                lines.append(f"| {_md(r[S.DOC_ID], 40)} | {_md(detail)} | {at} | {_md(repr(r['before']), 60, fold=False)} | {_md(repr(r['after']), 60, fold=False)} |")

    pr = st["pairs"]
    lines += [
        "", "## Repeats inside documents", "",
        f"{pr['caption_pairs']} caption pairs (a caption, then a rewrite of it or the same words again) and "
        f"{pr['repeats']} repeated passages further apart, in {pr['documents_with_pairs']} documents; "
        f"{pr['verbatim']} were verbatim copies. {pr['passages_dropped']} passages were dropped from the cleaned text.",
    ]
    sample = samples["pairs"]
    if sample.height and n_ex:
        lines += ["", "| document | kind | passages | similarity | original | second | action |", "|---|---|---|---:|---|---|---|"]
        for r in sample.iter_rows(named=True):
            lines.append(
                f"| {_md(r[S.DOC_ID], 40)} | {r[S.P_PAIR_KIND]} ({r[S.P_ROLE]}) | {r[S.P_PARTNER]} → {r[S.P_INDEX]} | "
                f"{r[S.P_SIMILARITY]:.0f} | {_md(r['original_text'], 90)} | {_md(r[S.P_TEXT], 90)} | {r[S.P_ACTION]} |"
            )

    lines += _garble_section(stats, config, samples["garbled"], n_ex)

    cl = st["cluster"]
    lines += [
        "", "## Duplicate documents", "",
        f"{cl['clusters']} clusters: {cl['exact_duplicates']} exact copies and {cl['near_duplicates']} near duplicates "
        f"dropped ({cl['candidates']} LSH candidate pairs, {cl['verified']} verified). "
        f"Kept per cluster: the `{config.cluster.keep}` member (ties to the earlier record).",
    ]
    near = samples["near"]
    if near.height and n_ex:
        lines += ["", "Least similar near duplicates:", "", "| dropped | kept | similarity | dropped text | kept text |", "|---|---|---:|---|---|"]
        for r in near.iter_rows(named=True):
            lines.append(
                f"| {_md(r[S.DOC_ID], 40)} | {_md(r[S.DUPLICATE_OF], 40)} | {r[S.DUP_SIMILARITY]:.1f} | "
                f"{_md(r[S.TEXT_NORM], 80)} | {_md(kept_texts.get(r[S.KEPT_ROW]), 80)} |"
            )
    lines += ["", "## Time", "", "| stage | seconds |", "|---|---:|"]
    for stage in ("input", "normalise", "segment", "pairs", "garble", "cluster", "output"):
        if stage in st and "seconds" in st[stage]:
            lines.append(f"| {stage} | {st[stage]['seconds']:.2f} |")
    lines.append(f"| total | {st.get('total_seconds', 0):.2f} |")
    return "\n".join(lines) + "\n"


def _garble_section(stats: dict, config: PipelineConfig, p: pl.DataFrame, n_ex: int) -> list[str]:
    """Garbled passages: how many, of which kinds, the worst examples with their reasons."""
    st = stats.get("garble")
    if not st:
        return ["", "## Garbled passages", "", "Garble scoring was switched off (`garble.enabled = false`)."]
    labels = st["by_label"]
    share = st["seconds"] / max(1e-9, stats.get("total_seconds") or 1e-9)
    lines = [
        "", "## Garbled passages", "",
        f"{labels.get('garbled', 0)} passages garbled ({st['garbled_by_mode'].get('paired', 0)} rewrites judged against their "
        f"original, {st['garbled_by_mode'].get('unpaired', 0)} on intrinsic signals alone), {labels.get('faithful', 0)} faithful, "
        f"{labels.get('not scored', 0)} not scored (fragments, fewer than {config.garble.min_words} words). "
        f"Threshold {config.garble.threshold}; action `{config.garble.action}` "
        f"({st['passages_dropped']} passages dropped for it). "
        + (f"{st.get('near_duplicates_garbled', 0)} near-duplicate documents differ from the copy kept in a way the scorer "
           f"calls garbled (`dropped` lists their reasons). " if config.garble.scores_copies else
           "Near-duplicate documents were not scored against the copy kept (`garble.near_copies = false`). ")
        + f"Scoring took {st['seconds']:.2f} s, {100 * share:.1f}% of the run.",
    ]
    if st["reasons_by_type"]:
        lines += ["", "| reason | findings |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in _by_count(st["reasons_by_type"])]
    if p.height and n_ex:
        lines += ["", "Highest scores (spans are raw offsets in the document):", "",
                  "| document | passage | mode | score | reasons | text |", "|---|---:|---|---:|---|---|"]
        for r in p.iter_rows(named=True):
            why = "; ".join(f"{x['type']} {x['start']}-{x['end']}: {x['explanation']}" for x in r[S.G_REASONS] if x["severity"] >= 0.3)
            lines.append(f"| {_md(r[S.DOC_ID], 40)} | {r[S.P_INDEX]} | {r[S.G_MODE]} | {r[S.G_SCORE]:.2f} | {_md(why, 240)} | {_md(r[S.P_TEXT], 90)} |")
    return lines
