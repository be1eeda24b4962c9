"""The garble stage: :mod:`dedup.garble`'s scorer applied to the passage and document frames.

Passages are scored with their document as context (a caption rewrite against its original, every
other passage on intrinsic signals), near-duplicate documents against the copy their cluster kept;
reason offsets become raw-text offsets into each document.
"""

from __future__ import annotations

from itertools import chain

import polars as pl

from .columns import struct_lists
from .jobs import job_size, shared
from .garble import (NOT_SCORED, Context, Reason, capitals, may_need_tokens, score_near_copy, score_pair, score_text,
                     text_read_verdict, tokens, words)


def reason_dtype() -> pl.Struct:
    """The polars type of one reason in ``garble_reasons``."""
    return pl.Struct(
        {
            "type": pl.String, "start": pl.Int64, "end": pl.Int64, "orig_start": pl.Int64, "orig_end": pl.Int64,
            "text": pl.String, "orig_text": pl.String, "explanation": pl.String, "severity": pl.Float64,
        }
    )


def score_passages(passages, docs, config) -> "pl.DataFrame":
    """Add garble_score, garble_label, garble_mode and garble_reasons to the passage frame.

    A caption rewrite (or paraphrased repeat) is scored against its original, paired; with
    ``config.unpaired`` every other passage is scored on intrinsic signals, the document being the
    context. Glued quotes that the normaliser repaired inside a passage are reported as ``quote_repaired``.
    Reason offsets are raw-text offsets into the document, like the passage's ``start``/``end``.
    """
    from . import schema as S
    from .normalise import map_offsets

    n = passages.height
    scores: list[float | None] = [None] * n
    labels: list[str] = [NOT_SCORED] * n
    modes: list[str | None] = [None] * n
    reasons_out: list[list[dict]] = [[] for _ in range(n)]
    need = passages.select(S.ROW, S.P_INDEX, S.P_TEXT, S.P_ROLE, S.P_PARTNER, S.P_KIND, S.P_NORM_START, S.P_WORDS)
    doc_info = {
        row: (raw, an, ar, repairs)
        for row, raw, an, ar, repairs in docs.filter(pl.col(S.ROW).is_in(need[S.ROW].unique().implode()))
        .select(S.ROW, S.TEXT, S.ANCHOR_NORM, S.ANCHOR_RAW, _quote_repairs()).iter_rows()
    }
    rows = need.rows()
    k = 0
    while k < n:
        row = rows[k][0]
        end = k
        while end < n and rows[end][0] == row:
            end += 1
        _score_document(rows[k:end], k, doc_info[row], config, scores, labels, modes, reasons_out, map_offsets)
        k = end
    return passages.with_columns(
        pl.Series(S.G_SCORE, scores, dtype=pl.Float64),
        pl.Series(S.G_LABEL, labels, dtype=pl.String),
        pl.Series(S.G_MODE, modes, dtype=pl.String),
        reasons_series(S.G_REASONS, reasons_out),
    )


def _quote_repairs() -> pl.Expr:
    """Each document's normaliser changes made by its quotes fixer, in order: the only ones a passage's
    verdict reports (picked out in polars: the others never become Python objects)."""
    from . import schema as S

    change = pl.element()
    return pl.col(S.NORM_CHANGES).list.eval(change.filter(change.struct.field("fixer") == "quotes"))


def reasons_series(name: str, reasons_out: list[list[dict]]) -> "pl.Series":
    """A List(Struct) column of reasons from per-row lists of reason dicts."""
    return struct_lists(name, reasons_out, reason_dtype())


def _score_document(rows, offset, info, config, scores, labels, modes, reasons_out, map_offsets) -> None:
    import numpy as np

    raw, anchor_norm, anchor_raw, repairs = info
    anchor_norm, anchor_raw = np.asarray(anchor_norm, dtype=np.int64), np.asarray(anchor_raw, dtype=np.int64)  # once per document
    texts = {r[1]: r[2] for r in rows}
    norm_start = {r[1]: r[6] for r in rows}
    ws = {index: words(text) for index, text in texts.items()}  # Token objects only where a check asks
    made: dict = {}

    def toks(index):
        if index not in made:
            made[index] = tokens(texts[index])
        return made[index]

    # The document's words are its passages' words in a row: a repeat inside a passage is one there,
    # and the context holds the same names. So when no token-reading detector can find anything in
    # the document (most documents), none can in a passage, and each is read as text alone.
    every_word = list(chain.from_iterable(ws.values()))
    doc_caps = capitals(every_word)
    ctx = Context.from_capitals([doc_caps], list(texts.values()))
    text_alone = not may_need_tokens(every_word, ctx, doc_caps)
    caps = {} if text_alone else {index: capitals(w) for index, w in ws.items()}
    repairs = repairs or []  # the quotes fixer's changes alone (_quote_repairs)
    for i, (_, index, text, role, partner, kind, start, n_words) in enumerate(rows):
        if kind == "fragment" or (n_words or 0) < config.min_words:
            continue
        if role in ("rewrite", "verbatim") and partner is not None and partner in texts:
            v = score_pair(texts[partner], text, context=ctx, threshold=config.threshold, min_words=config.min_words,
                           unpaired=config.unpaired, o_toks=toks(partner), r_toks=toks(index))
        elif config.unpaired:
            p_raw = (
                (int(map_offsets(anchor_norm, anchor_raw, start)), int(map_offsets(anchor_norm, anchor_raw, start + len(text))))
                if repairs else (0, 0)
            )
            extra = [
                Reason("quote_repaired", 0, 0, f"a glued, stray or mismatched quote mark in the raw text: '{c['before']}' "
                       f"was repaired as '{c['after']}'",
                       c["raw_start"], c["raw_end"])
                for c in repairs if p_raw[0] <= c["raw_start"] < p_raw[1]
            ]
            if text_alone:
                v = text_read_verdict(text, len(ws[index]), threshold=config.threshold, min_words=config.min_words,
                                      extra_reasons=extra)
            else:
                v = score_text(text, context=ctx, threshold=config.threshold, min_words=config.min_words, extra_reasons=extra,
                               ws=ws[index], caps=caps[index])
        else:
            continue
        j = offset + i
        scores[j], labels[j], modes[j] = round(v.score, 4), v.label, v.mode
        o_start = norm_start.get(partner) if v.mode == "paired" else None
        reasons_out[j] = _reason_rows(v.reasons, raw, anchor_norm, anchor_raw, start,
                                      raw, anchor_norm, anchor_raw, o_start)  # an original passage: same document


def _reason_rows(reasons: list[Reason], raw: str, an, ar, base: int,
                 o_raw: str, o_an, o_ar, o_base: int | None) -> list[dict]:
    """The rows of ``reasons`` with raw offsets, mapped all at once: spans (``base`` plus the offset)
    through the anchors ``an``/``ar`` of ``raw``, the original's (``o_base`` plus the offset; none
    when ``o_base`` is None) through ``o_an``/``o_ar`` of ``o_raw``. A ``quote_repaired`` reason,
    built from the normaliser's record, holds raw offsets already."""
    if not reasons:  # most passages
        return []
    from .normalise import map_offsets

    def mapped(anchors_norm, anchors_raw, at: int, pairs: list[tuple[int, int]]):
        flat = [at + x for pair in pairs for x in pair]
        return iter(map_offsets(anchors_norm, anchors_raw, flat).tolist() if flat else ())

    moved = [r for r in reasons if r.type != "quote_repaired"]
    spans = mapped(an, ar, base, [(r.start, r.end) for r in moved])
    known = [(r.orig_start, r.orig_end) for r in moved if r.orig_start is not None] if o_base is not None else []
    o_spans = mapped(o_an, o_ar, o_base or 0, known)
    out = []
    for r in reasons:
        if r.type == "quote_repaired":
            out.append(_reason_row(r, r.orig_start, r.orig_end, raw, None, None, None))
            continue
        s, e = next(spans), next(spans)
        os_ = oe = None
        if r.orig_start is not None and o_base is not None:
            os_, oe = next(o_spans), next(o_spans)
        out.append(_reason_row(r, s, e, raw, os_, oe, o_raw[os_:oe] if os_ is not None else None))
    return out


def _reason_row(r: Reason, s: int, e: int, raw: str, os_, oe, orig_text) -> dict:
    return {
        "type": r.type, "start": s, "end": e, "orig_start": os_, "orig_end": oe, "text": raw[s:e],
        "orig_text": orig_text, "explanation": r.explanation, "severity": r.severity,
    }


def score_copy(copy: list, kept: list, config) -> tuple[float, str, list[dict]]:
    """Score one document (``[raw, normalised, anchor_norm, anchor_raw]``) against the copy its cluster
    kept (the same four); reason offsets are raw, into each document."""
    raw, norm, an, ar = copy
    o_raw, o_norm, o_an, o_ar = kept
    v = score_near_copy(o_norm, norm, threshold=config.threshold, min_words=config.min_words)
    return round(v.score, 4), v.label, _reason_rows(v.reasons, raw, an, ar, 0, o_raw, o_an, o_ar, 0)


def score_documents(docs, config, kept=None, pool=None, workers: int = 1, batch: int = 0) -> "pl.DataFrame":
    """Score each near-duplicate document against the copy its cluster kept (paired, whole texts).

    Adds garble_score, garble_label and garble_reasons (raw offsets: ``start``/``end`` into this
    document, ``orig_start``/``orig_end`` into the kept one) to the document frame; other documents get
    nulls and ``not scored``. This says which copy of a story is the damaged one, and how. The kept
    copies are looked up by row in ``kept`` (default: ``docs`` itself; a batch of a larger corpus
    passes the copies it needs).

    With ``pool`` (a ``concurrent.futures`` executor), the near duplicates are scored ``batch`` at a
    time (default: :func:`dedup.jobs.job_size`), each with the kept copies it needs, by ``workers``
    processes: ``workers - 1`` on the pool and this one (:func:`dedup.jobs.shared`); the result is
    the same.
    """
    from . import schema as S

    n = docs.height
    scores: list[float | None] = [None] * n
    labels: list[str] = [NOT_SCORED] * n
    reasons_out: list[list[dict]] = [[] for _ in range(n)]
    near = docs.select(pl.arg_where(pl.col(S.DUP_KIND) == "near")).to_series().to_list()
    if near:
        cols = [S.TEXT, S.TEXT_NORM, S.ANCHOR_NORM, S.ANCHOR_RAW]
        near_rows = docs.select(*cols, S.KEPT_ROW)[near]
        kept = (docs if kept is None else kept).select(S.ROW, *cols)
        kept = kept.filter(pl.col(S.ROW).is_in(near_rows[S.KEPT_ROW].unique().implode()))
        size = batch or job_size(len(near), workers, _MIN_BATCH)
        jobs = []
        for lo in range(0, len(near), size):
            part = near_rows.slice(lo, size)
            jobs.append((part, kept.filter(pl.col(S.ROW).is_in(part[S.KEPT_ROW].unique().implode())), config))
        parts = dict(shared(score_near, jobs, pool, workers - 1))
        got = [item for k in range(len(jobs)) for item in parts[k]]
        for i, item in zip(near, got):
            if item is not None:
                scores[i], labels[i], reasons_out[i] = item
    return docs.with_columns(
        pl.Series(S.G_SCORE, scores, dtype=pl.Float64),
        pl.Series(S.G_LABEL, labels, dtype=pl.String),
        reasons_series(S.G_REASONS, reasons_out),
    )


_MIN_BATCH = 32  # near duplicates per job sent to a worker process (fewer are not worth the pickling)


def score_near(near_rows: "pl.DataFrame", kept: "pl.DataFrame", config) -> list[tuple | None]:
    """:func:`score_copy` of each row of ``near_rows`` (text, normalised text, anchors, kept row)
    against its kept copy in ``kept`` (row, text, normalised text, anchors); None where the kept copy
    is absent. Plain frames in, a list out: a worker process can run it."""
    by_row = {r[0]: list(r[1:]) for r in kept.iter_rows()}
    out: list[tuple | None] = []
    for r in near_rows.iter_rows():
        copy = by_row.get(r[-1])
        out.append(score_copy(list(r[:-1]), copy, config) if copy is not None else None)
    return out
