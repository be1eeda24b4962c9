"""``dedup score FILE``: garble-score every row of a file of pairs (original, rewrite) or of passages.

Every row of the input comes back as one row of the output, in order: a row that cannot be scored
(malformed, or missing its original) has ``garble_label = "not scored"`` and the reason in ``error``.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from . import garble
from .garble_stage import reason_dtype
from . import schema as S
from .config import GarbleConfig, InputConfig
from .errors import InputError
from .io import MALFORMED, _open_bytes, detect_format, read_input


def columns_of(path: Path, fmt: str) -> list[str]:
    """The columns of a table file, or the keys of a JSONL file's first record."""
    if not path.exists():
        raise InputError(f"{path}: no such file; check the input path")
    if fmt == "parquet":
        return list(pl.read_parquet_schema(path))
    if fmt == "csv":
        return pl.read_csv(path, n_rows=0, infer_schema_length=0).columns
    if fmt == "jsonl":
        with _open_bytes(path) as fh:
            for k, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        return list(json.loads(line))
                    except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as exc:
                        raise InputError(f"{path} line {k}: not a JSON object ({exc}); fix or remove the line") from None
        return []
    raise InputError(f"{path}: score reads JSONL (.gz), Parquet or CSV files, not {fmt}; convert it or name it so")


def score_file(source: str | Path, args, config: GarbleConfig) -> pl.DataFrame:
    path = Path(source)
    fmt = detect_format(path)
    cols = columns_of(path, fmt)
    if args.rewrite_field in cols:
        if args.original_field not in cols:
            raise InputError(f"{path}: has a {args.rewrite_field!r} column but no {args.original_field!r} column to score it "
                             f"against; columns present: {', '.join(cols)}; name it with --original-field")
        mode, field = "paired", args.rewrite_field
    elif args.text_field in cols:
        mode, field = "unpaired", args.text_field
    else:
        raise InputError(f"{path}: no {args.rewrite_field!r}/{args.original_field!r} columns (pairs) and no {args.text_field!r} "
                         f"column (passages); columns present: {', '.join(cols) or '(none)'}; name them with "
                         f"--original-field/--rewrite-field or --text-field")
    frame, _ = read_input(path, InputConfig(text_field=field, on_error="skip", format=fmt))
    texts = frame[S.TEXT].to_list()
    errors = frame[MALFORMED].to_list()
    originals = frame[args.original_field].to_list() if mode == "paired" and args.original_field in frame.columns else None
    groups = frame[args.context_field].to_list() if args.context_field and args.context_field in frame.columns else None
    if args.context_field and groups is None:
        raise InputError(f"{path}: no context column {args.context_field!r}; columns present: {', '.join(cols)}")
    contexts: dict = {}
    if mode == "unpaired":
        by_group: dict = {}
        for k, t in enumerate(texts):
            by_group.setdefault(groups[k] if groups else k, []).append(t or "")
        contexts = {g: garble.Context.from_texts(ts) for g, ts in by_group.items()}
    out = []
    for k, text in enumerate(texts):
        err = errors[k] and errors[k].replace("set the text field with --set input.text_field=NAME",
                                              "name the column with --rewrite-field or --text-field")
        if err is None and text is None:
            err = f"{path} record {k + 1}: {field!r} is empty; give it a text"
        if err is None and mode == "paired" and not isinstance(originals[k], str):
            err = f"{path} record {k + 1}: {args.original_field!r} is missing or not text; give the original"
        if err is not None:
            out.append({"garble_score": None, "garble_label": garble.NOT_SCORED, "garble_mode": mode, "garble_reasons": [], "error": err})
            continue
        if mode == "paired":
            v = garble.score_pair(originals[k], text, threshold=config.threshold, min_words=config.min_words, unpaired=config.unpaired)
        else:
            v = garble.score_text(text, context=contexts[groups[k] if groups else k], threshold=config.threshold,
                                  min_words=config.min_words)
        d = v.to_dict()
        d.pop("garble_raw")
        d["garble_reasons"] = [
            {**r, "text": text[r["start"] : r["end"]],
             "orig_text": originals[k][r["orig_start"] : r["orig_end"]] if mode == "paired" and r["orig_start"] is not None else None,
             "severity": garble.SEVERITY[r["type"]]}
            for r in d["garble_reasons"]
        ]
        d["error"] = None
        out.append(d)
    result = pl.DataFrame(
        out,
        schema={"garble_score": pl.Float64, "garble_label": pl.String, "garble_mode": pl.String,
                "garble_reasons": pl.List(reason_dtype()), "error": pl.String},
    )
    return pl.concat([frame.select(pl.col(S.DOC_ID).alias("id")), result], how="horizontal")
