"""Polars column builders shared by the stages."""

from __future__ import annotations

import polars as pl


def struct_lists(name: str, per_row: list[list[dict]], dtype: pl.Struct) -> pl.Series:
    """A ``List(dtype)`` column from per-row lists of dicts (keys: the struct's fields), built column-wise.

    ``pl.Series(per_row, dtype=List(Struct))`` makes a Series per row and costs seconds over a corpus;
    flattening, grouping by row and joining back costs milliseconds. Empty rows get empty lists.
    """
    fields = list(dtype.fields)
    keys = [f.name for f in fields]
    idx: list[int] = []
    cols: dict[str, list] = {k: [] for k in keys}
    for i, items in enumerate(per_row):
        for item in items:
            idx.append(i)
            for k in keys:
                cols[k].append(item[k])
    flat = pl.DataFrame({"_i": idx, **cols}, schema={"_i": pl.Int64, **{f.name: f.dtype for f in fields}})
    grouped = flat.group_by("_i").agg(pl.struct(keys).alias(name))
    full = pl.DataFrame({"_i": pl.Series(range(len(per_row)), dtype=pl.Int64)}).join(grouped, on="_i", how="left").sort("_i")
    return full.select(pl.coalesce(pl.col(name), pl.lit([], dtype=pl.List(dtype))).alias(name)).to_series()
