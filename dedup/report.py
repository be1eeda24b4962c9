"""A Markdown report a person can read: counts, what was fixed, what was paired and clustered, with examples."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from . import schema as S

if TYPE_CHECKING:
    from .pipeline import Result


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


def markdown_report(result: Result) -> str:
    st = result.stats
    n_ex = result.config.output.report_examples
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
    lines += [f"| dropped: {reason} | {n} |" for reason, n in res["dropped_by_reason"].items()]
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
    lines += [f"| {k} | {v} |" for k, v in norm["documents_by_fixer"].items()]
    changes = result.documents.select(S.DOC_ID, S.NORM_CHANGES).explode(S.NORM_CHANGES).drop_nulls(S.NORM_CHANGES).unnest(S.NORM_CHANGES)
    if changes.height and n_ex:
        lines += ["", "Examples (raw offsets):", "", "| document | fixer | at | before | after |", "|---|---|---|---|---|"]
        for fixer in changes["fixer"].unique(maintain_order=True).to_list():
            sample = changes.filter(pl.col("fixer") == fixer).unique(subset=["before", "after"], maintain_order=True).head(n_ex)
            for r in sample.iter_rows(named=True):
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
    p = result.passages
    seconds = p.filter(pl.col(S.P_ROLE).is_in(["rewrite", "verbatim"]))
    if seconds.height and n_ex:
        originals = p.select(S.ROW, pl.col(S.P_INDEX).alias(S.P_PARTNER), pl.col(S.P_TEXT).alias("original_text"))
        sample = seconds.join(originals, on=[S.ROW, S.P_PARTNER], how="left").sort(S.P_PAIR_KIND, S.P_SIMILARITY).head(n_ex * 2)
        lines += ["", "| document | kind | passages | similarity | original | second | action |", "|---|---|---|---:|---|---|---|"]
        for r in sample.iter_rows(named=True):
            lines.append(
                f"| {_md(r[S.DOC_ID], 40)} | {r[S.P_PAIR_KIND]} ({r[S.P_ROLE]}) | {r[S.P_PARTNER]} → {r[S.P_INDEX]} | "
                f"{r[S.P_SIMILARITY]:.0f} | {_md(r['original_text'], 90)} | {_md(r[S.P_TEXT], 90)} | {r[S.P_ACTION]} |"
            )

    lines += _garble_section(result, n_ex)

    cl = st["cluster"]
    lines += [
        "", "## Duplicate documents", "",
        f"{cl['clusters']} clusters: {cl['exact_duplicates']} exact copies and {cl['near_duplicates']} near duplicates "
        f"dropped ({cl['candidates']} LSH candidate pairs, {cl['verified']} verified). "
        f"Kept per cluster: the `{result.config.cluster.keep}` member (ties to the earlier record).",
    ]
    d = result.documents
    near = d.filter(pl.col(S.DUP_KIND) == "near").sort(S.DUP_SIMILARITY).head(n_ex)
    if near.height:
        texts = d.select(pl.col(S.DOC_ID).alias(S.DUPLICATE_OF), pl.col(S.TEXT_NORM).alias("kept_text"))
        near = near.join(texts, on=S.DUPLICATE_OF, how="left")
        lines += ["", "Least similar near duplicates:", "", "| dropped | kept | similarity | dropped text | kept text |", "|---|---|---:|---|---|"]
        for r in near.iter_rows(named=True):
            lines.append(
                f"| {_md(r[S.DOC_ID], 40)} | {_md(r[S.DUPLICATE_OF], 40)} | {r[S.DUP_SIMILARITY]:.1f} | "
                f"{_md(r[S.TEXT_NORM], 80)} | {_md(r['kept_text'], 80)} |"
            )
    lines += ["", "## Time", "", "| stage | seconds |", "|---|---:|"]
    for stage in ("input", "normalise", "segment", "pairs", "garble", "cluster", "output"):
        if stage in st and "seconds" in st[stage]:
            lines.append(f"| {stage} | {st[stage]['seconds']:.2f} |")
    lines.append(f"| total | {st.get('total_seconds', 0):.2f} |")
    return "\n".join(lines) + "\n"


def _garble_section(result: Result, n_ex: int) -> list[str]:
    """Garbled passages: how many, of which kinds, the worst examples with their reasons."""
    st = result.stats.get("garble")
    if not st:
        return ["", "## Garbled passages", "", "Garble scoring was switched off (`garble.enabled = false`)."]
    labels = st["by_label"]
    share = st["seconds"] / max(1e-9, result.stats.get("total_seconds") or 1e-9)
    lines = [
        "", "## Garbled passages", "",
        f"{labels.get('garbled', 0)} passages garbled ({st['garbled_by_mode'].get('paired', 0)} rewrites judged against their "
        f"original, {st['garbled_by_mode'].get('unpaired', 0)} on intrinsic signals alone), {labels.get('faithful', 0)} faithful, "
        f"{labels.get('not scored', 0)} not scored (fragments, fewer than {result.config.garble.min_words} words). "
        f"Threshold {result.config.garble.threshold}; action `{result.config.garble.action}` "
        f"({st['passages_dropped']} passages dropped for it). {st.get('near_duplicates_garbled', 0)} near-duplicate documents "
        f"differ from the copy kept in a way the scorer calls garbled (`dropped` lists their reasons). "
        f"Scoring took {st['seconds']:.2f} s, {100 * share:.1f}% of the run.",
    ]
    if st["reasons_by_type"]:
        lines += ["", "| reason | findings |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in st["reasons_by_type"].items()]
    p = result.passages.filter(pl.col(S.G_LABEL) == "garbled")
    if p.height and n_ex:
        lines += ["", "Highest scores (spans are raw offsets in the document):", "",
                  "| document | passage | mode | score | reasons | text |", "|---|---:|---|---:|---|---|"]
        for r in p.sort(S.G_SCORE, descending=True).head(n_ex * 2).iter_rows(named=True):
            why = "; ".join(f"{x['type']} {x['start']}-{x['end']}: {x['explanation']}" for x in r[S.G_REASONS] if x["severity"] >= 0.3)
            lines.append(f"| {_md(r[S.DOC_ID], 40)} | {r[S.P_INDEX]} | {r[S.G_MODE]} | {r[S.G_SCORE]:.2f} | {_md(why, 240)} | {_md(r[S.P_TEXT], 90)} |")
    return lines
