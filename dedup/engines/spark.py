"""The Apache Spark engine: the same pipeline, the same results, on a cluster.

What runs where:

* every per-document stage (normalise, segment, within-document pairs, garble scoring of passages)
  is :func:`dedup.pipeline.document_stage`, applied by ``mapInArrow`` to batches of whole documents;
  the same batch function also computes each document's cluster inputs (word count, whitespace key,
  MinHash signature and LSH band keys, the keep rule's sort key) and its cleaned text;
* Spark does the shuffles: exact groups (``groupBy`` on the whitespace key), LSH buckets (``groupBy``
  on band and key), candidate pairs joined to both documents, verified with the local engine's own
  check, cluster members joined to the copy kept;
* connected components run on the driver with the local engine's union-find when the edges are few
  (``engine.driver_components_max``), else by label propagation in Spark (smallest row wins, as in
  the union-find, so both give the same cluster ids);
* outputs are written by Spark as partitioned JSONL/Parquet/CSV directories (``cleaned.jsonl/``,
  ``dropped.jsonl/``, ``dropped_passages.jsonl/``, ``annotations.parquet/``), ``stats.json`` and
  ``report.md`` by the driver.

Signatures are uint32 in the core and travel as signed 64-bit integers (Spark has no unsigned types);
band keys are uint64 and travel as their int64 bit pattern. Input: JSONL (``.gz`` too), Parquet and CSV
are read by Spark (any path its filesystem layer reads: local, ``hdfs://``, ``s3a://``); ``.txt`` files
and stdin are read on the driver and then distributed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from .. import schema as S
from ..cluster import batch_signatures, component_roots, duplicate_links, keep_order, screened, whitespace_key
from ..cluster import verify_pairs as verified_mask
from ..config import PipelineConfig
from ..errors import DedupError, InputError
from ..garble import NOT_SCORED
from ..garble_stage import reason_dtype, score_copy
from ..io import (
    EXTRA_JSON, MALFORMED, SKIP_HINT, _record_rows, damaged_gzip, detect_format, missing_text_column, parse_jsonl_line,
    read_input,
)
from ..minhash import band_keys
from ..pipeline import ANNOTATION_COLUMNS, add_counts, cleaned_texts, document_stage, document_stats

# --- the columns that travel between the batch functions --------------------------------------

WORDS, WS_KEY, SIG, BANDS, KEEP_A, KEEP_B = "_words", "_ws_key", "_sig", "_bands", "_keep_a", "_keep_b"
CLEAN_PRE, PASSAGES, STATS = "_text_clean_if_kept", "_passages", "_stats"

_CHANGE = pl.Struct({"fixer": pl.String, "detail": pl.String, "raw_start": pl.Int64, "raw_end": pl.Int64,
                     "before": pl.String, "after": pl.String})
DOCS_IN = {S.ROW: pl.Int64, S.SOURCE_LINE: pl.Int64, S.DOC_ID: pl.String, S.TEXT: pl.String,
           S.DECODE_ERROR: pl.Boolean, MALFORMED: pl.String, EXTRA_JSON: pl.String}
PASSAGE_COLUMNS = [c for c in ANNOTATION_COLUMNS if c not in (S.DOC_ID, S.CLUSTER_ID, S.DUPLICATE_OF, S.DECODE_ERROR)]
PASSAGE = pl.Struct({
    S.P_INDEX: pl.Int32, S.P_START: pl.Int64, S.P_END: pl.Int64, S.P_NORM_START: pl.Int64, S.P_NORM_END: pl.Int64,
    S.P_KIND: pl.String, S.P_WORDS: pl.Int64, S.P_TEXT: pl.String, S.P_PAIR_KIND: pl.String, S.P_ROLE: pl.String,
    S.P_PARTNER: pl.Int32, S.P_SIMILARITY: pl.Float64, S.P_JACCARD: pl.Float64, S.G_SCORE: pl.Float64,
    S.G_LABEL: pl.String, S.G_MODE: pl.String, S.G_REASONS: pl.List(reason_dtype()), S.P_ACTION: pl.String,
    S.DROP_REASON: pl.String,
})
PROCESSED = {
    **DOCS_IN,
    S.TEXT_NORM: pl.String, S.NORM_FIXES: pl.List(pl.String), S.NORM_CHANGES: pl.List(_CHANGE),
    S.ANCHOR_NORM: pl.List(pl.Int64), S.ANCHOR_RAW: pl.List(pl.Int64), S.DROP_REASON: pl.String,
    CLEAN_PRE: pl.String, WORDS: pl.Int64, WS_KEY: pl.String, SIG: pl.List(pl.Int64), BANDS: pl.List(pl.Int64),
    KEEP_A: pl.Int64, KEEP_B: pl.Int64, PASSAGES: pl.List(PASSAGE), STATS: pl.String,
}


def _arrow(frame: pl.DataFrame, schema: dict):
    """A polars frame as an Arrow table with plain (not large) string and list types, as Spark wants."""
    table = frame.select([pl.col(c).cast(t) for c, t in schema.items()]).to_arrow()
    return table.cast(_plain_schema(table.schema))


def _plain_type(t):
    import pyarrow as pa

    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_list(t) or pa.types.is_list(t):
        return pa.list_(_plain_type(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _plain_type(f.type)) for f in t])
    return t


def _plain_schema(schema):
    import pyarrow as pa

    return pa.schema([pa.field(f.name, _plain_type(f.type)) for f in schema])


def spark_schema(schema: dict):
    """The Spark schema of a polars schema (via Arrow)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(_arrow(pl.DataFrame(schema=schema), schema).schema)


# --- batch functions (run on the executors) ----------------------------------------------------


def parse_lines(name: str, config: PipelineConfig):
    """Batches of ``(row, line, value: bytes)`` JSONL lines -> document rows, malformed ones kept."""
    from dataclasses import replace

    skip = replace(config.input, on_error="skip")

    def fn(batches):
        for batch in batches:
            b = pl.from_arrow(batch)
            records = []
            for row, line, raw in b.iter_rows():
                rec = parse_jsonl_line(raw, line, name, skip)
                rec["row"] = row
                records.append(rec)
            yield from _arrow(_record_rows(iter(records), name, skip, extras_as_json=True), DOCS_IN).to_batches()

    return fn


def process_documents(config: PipelineConfig):
    """Batches of document rows -> the same rows after every per-document stage, with their passages
    nested, their cluster inputs, their cleaned text (if kept) and the batch's counts."""

    def fn(batches):
        for batch in batches:
            frame = pl.from_arrow(batch)
            if frame.height:
                yield from _arrow(_process(frame, config), PROCESSED).to_batches()

    return fn


def _process(frame: pl.DataFrame, config: PipelineConfig) -> pl.DataFrame:
    cc = config.cluster
    date_field = config.input.date_field
    dates = [json.loads(e).get(date_field) if e else None for e in frame[EXTRA_JSON].to_list()]
    docs, passages = document_stage(frame.drop(EXTRA_JSON), config)
    docs = docs.with_columns(frame[EXTRA_JSON])
    with_dates = docs.with_columns(pl.Series(date_field, [None if d is None else str(d) for d in dates], dtype=pl.String))
    ranks = keep_order(with_dates, cc, date_field)
    words, _, eligible, sig = batch_signatures(docs, cc, threads=1)  # one Spark task per core
    sigs: list = [None] * docs.height
    bands: list = [None] * docs.height
    if len(eligible):
        keys = band_keys(sig, cc.bands, cc.rows).view(np.int64)
        for k, i in enumerate(eligible.tolist()):
            sigs[i] = sig[k].astype(np.int64).tolist()
            bands[i] = keys[k].tolist()
    cleaned = cleaned_texts(docs, passages)  # if the document stays: cluster drops come later
    nested = passages.select(S.ROW, pl.struct([pl.col(c).cast(PASSAGE.to_schema()[c]) for c in PASSAGE_COLUMNS]).alias(PASSAGES))
    nested = nested.group_by(S.ROW, maintain_order=True).agg(pl.col(PASSAGES))
    stats = [None] * docs.height
    stats[0] = json.dumps(document_stats(docs, passages, config))
    docs = docs.with_columns(
        pl.Series(CLEAN_PRE, cleaned, dtype=pl.String),
        pl.Series(WORDS, words, dtype=pl.Int64),
        whitespace_key(docs[S.TEXT_NORM]).alias(WS_KEY),
        pl.Series(SIG, sigs, dtype=pl.List(pl.Int64)),
        pl.Series(BANDS, bands, dtype=pl.List(pl.Int64)),
        pl.Series(KEEP_A, [r[0] for r in ranks], dtype=pl.Int64),
        pl.Series(KEEP_B, [r[1] for r in ranks], dtype=pl.Int64),
        pl.Series(STATS, stats, dtype=pl.String),
    )
    docs = docs.join(nested, on=S.ROW, how="left").with_columns(
        pl.col(PASSAGES).fill_null(pl.lit([], dtype=pl.List(PASSAGE)))
    )
    return docs


def bucket_pairs(max_bucket: int):
    """LSH buckets (sorted member rows) -> candidate pairs, as :func:`dedup.minhash.lsh_pairs` makes
    them: every pair of a bucket of at most ``max_bucket`` rows, the chain of a larger one."""

    def fn(batches):
        import pyarrow as pa

        for batch in batches:
            i_out, j_out = [], []
            for members in batch.column("members").to_pylist():
                if len(members) <= max_bucket:
                    for a in range(len(members)):
                        for b in range(a + 1, len(members)):
                            i_out.append(members[a])
                            j_out.append(members[b])
                else:
                    i_out += members[:-1]
                    j_out += members[1:]
            yield pa.RecordBatch.from_pydict({"i": pa.array(i_out, pa.int64()), "j": pa.array(j_out, pa.int64())})

    return fn


def verify_pairs(config):
    """Candidate pairs with both texts and signatures -> the pairs the local engine's check accepts."""
    from ..minhash import fold_all

    def fn(batches):
        import pyarrow as pa

        for batch in batches:
            b = pl.from_arrow(batch)
            if b.height:
                keep, estimates = screened(np.stack(b["sig_i"].to_numpy()), np.stack(b["sig_j"].to_numpy()), config)
                b = b.filter(pl.Series(keep))  # folded for these pairs only
                ok = verified_mask(fold_all(b["text_i"], 1), fold_all(b["text_j"], 1), estimates, config, threads=1)
                b = b.filter(pl.Series(ok))
            yield pa.RecordBatch.from_pydict({"i": pa.array(b["i"].to_numpy(), pa.int64()), "j": pa.array(b["j"].to_numpy(), pa.int64())})

    return fn


def link_members():
    """Cluster members with the copy kept -> kind (exact/near) and similarity, as the local engine."""

    def fn(batches):
        import pyarrow as pa

        for batch in batches:
            b = pl.from_arrow(batch)
            kinds, sims = duplicate_links(b["text"].fill_null("").to_list(), b["kept_text"].fill_null("").to_list(), threads=1)
            yield pa.RecordBatch.from_pydict({
                S.ROW: batch.column(S.ROW), S.CLUSTER_ID: batch.column("root"), S.DUPLICATE_OF: batch.column("kept_id"),
                S.DUP_SIMILARITY: pa.array(sims, pa.float64()), S.DUP_KIND: pa.array(kinds, pa.string()),
                S.KEPT_ROW: batch.column("kept_row"),
            })

    return fn


GARBLE_DOC = {S.ROW: pl.Int64, S.G_SCORE: pl.Float64, S.G_LABEL: pl.String, S.G_REASONS: pl.List(reason_dtype())}


def score_copies(config):
    """Near duplicates with the copy kept -> their garble verdict (:func:`dedup.garble_stage.score_copy`)."""

    def fn(batches):
        for batch in batches:
            b = pl.from_arrow(batch)
            rows, scores, labels, reasons = [], [], [], []
            cols = [S.TEXT, S.TEXT_NORM, S.ANCHOR_NORM, S.ANCHOR_RAW]
            for r in b.iter_rows(named=True):
                s, label, rs = score_copy([r[c] for c in cols], [r["kept_" + c] for c in cols], config)
                rows.append(r[S.ROW])
                scores.append(s)
                labels.append(label)
                reasons.append(rs)
            frame = pl.DataFrame({S.ROW: rows, S.G_SCORE: scores, S.G_LABEL: labels,
                                  S.G_REASONS: pl.Series(reasons, dtype=pl.List(reason_dtype()))}, schema=GARBLE_DOC)
            yield from _arrow(frame, GARBLE_DOC).to_batches()

    return fn


# --- the driver ---------------------------------------------------------------------------------


def session(config: PipelineConfig):
    """A SparkSession for ``engine.master`` (an existing active one is reused; under spark-submit its
    own ``--master`` decides). Local workers use this interpreter unless PYSPARK_PYTHON says otherwise;
    on a cluster, ship an environment with dedup installed (benchmarks/README.md shows how)."""
    try:
        from pyspark import SparkConf
        from pyspark.sql import SparkSession
    except ImportError:
        raise DedupError("engine.name = \"spark\" needs pyspark and a Java runtime: pip install pyspark "
                         "(and e.g. apt-get install openjdk-17-jre-headless)") from None
    e = config.engine
    builder = SparkSession.builder.appName("dedup")
    if not SparkConf().contains("spark.master"):  # under spark-submit, its --master decides
        builder = builder.master(e.master)
        if e.master.startswith("local"):  # local workers: this interpreter, with dedup installed
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        builder.config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(e.shuffle_partitions))
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(e.batch_documents))
        .config("spark.ui.showConsoleProgress", "false")
    )
    if e.driver_memory:
        builder = builder.config("spark.driver.memory", e.driver_memory)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def read_documents(spark, source: str, config: PipelineConfig):
    """The input as a Spark frame of document rows (:data:`DOCS_IN`), rows numbered as the local engine."""
    fmt = detect_format(source, config.input.format)
    name = str(source)
    local = "://" not in name
    if local and not Path(name).exists() and fmt != "stdin":
        raise InputError(f"{name}: no such file or directory; check the input path")
    # UTF-16 lines are not byte lines, and Hadoop's reader fails the whole job on a truncated .gz:
    # such files are read on the driver, which keeps the records before the damage as the local engine does
    path = Path(name)
    on_driver = local and fmt == "jsonl" and path.is_file() and (_utf16_file(path) or damaged_gzip(path))
    if fmt == "jsonl" and not (local and Path(name).is_dir()) and not on_driver:
        lines = spark.sparkContext.textFile(name, use_unicode=False).zipWithIndex()
        rowed = lines.filter(lambda t: t[0].strip()).zipWithIndex().map(lambda t: (t[1], t[0][1] + 1, bytes(t[0][0])))
        raw = spark.createDataFrame(rowed, "row long, line long, value binary")
        return raw.mapInArrow(parse_lines(name, config), spark_schema(DOCS_IN))
    if fmt in ("parquet", "csv"):
        if fmt == "parquet":
            table = spark.read.parquet(name)
        else:  # every field as text, quoted fields may span lines (as the local reader)
            table = spark.read.options(header=True, multiLine=True, escape='"', inferSchema=False).csv(name)
        _check_text_column(table, name, config)
        rowed = table.rdd.zipWithIndex().map(
            lambda t: (t[1], t[1] + 1, json.dumps(t[0].asDict(recursive=True), default=str).encode("utf-8"))
        )
        raw = spark.createDataFrame(rowed, "row long, line long, value binary")
        return raw.mapInArrow(parse_lines(name, config), spark_schema(DOCS_IN))
    frame, _ = read_input(source, config.input)  # .txt files, stdin, UTF-16 JSONL, a damaged .gz: read on the driver
    extras = [c for c in frame.columns if c not in DOCS_IN]
    values = [json.dumps(r, ensure_ascii=False, default=str) for r in frame.select(extras).iter_rows(named=True)] if extras \
        else ["{}"] * frame.height
    frame = frame.with_columns(pl.Series(EXTRA_JSON, values, dtype=pl.String))
    return spark.createDataFrame(_arrow(frame, DOCS_IN).to_pandas(), schema=spark_schema(DOCS_IN))


def _utf16_file(path: Path) -> bool:
    """A UTF-16/32 file (by its BOM): its lines are not byte lines, so the driver reads it."""
    from ..io import _open_bytes, utf_bom

    with _open_bytes(path) as fh:
        return utf_bom(fh.read(4)) not in (None, "utf-8-sig")


def _check_text_column(table, name: str, config: PipelineConfig) -> None:
    """The same one-line errors as the local reader for a missing or non-text column."""
    from pyspark.sql.types import StringType

    fields = {f.name: f.dataType for f in table.schema.fields}
    if config.input.text_field not in fields:
        raise missing_text_column(name, config.input.text_field, list(fields))
    if not isinstance(fields[config.input.text_field], StringType):
        raise InputError(f"{name}: column {config.input.text_field!r} is {fields[config.input.text_field].simpleString()}, "
                         f"not text; point input.text_field at a text column")


def _raise_first_malformed(docs, config: PipelineConfig) -> None:
    """Under ``on_error = "raise"``: the first malformed record (by line) stops the run, as locally."""
    from pyspark.sql import functions as F

    if config.input.on_error != "raise":
        return
    bad = docs.filter(F.col(MALFORMED).isNotNull()).orderBy(S.SOURCE_LINE).select(MALFORMED).limit(1).collect()
    if bad:
        msg = bad[0][0]
        raise InputError(msg + SKIP_HINT if ("not valid JSON" in msg or "must be a JSON object" in msg) else msg)


def cluster(spark, processed, config: PipelineConfig, stats: dict):
    """Exact groups, LSH candidates, verification, components and the keep rule: a Spark frame of
    ``_row, cluster_id, duplicate_of, duplicate_similarity, duplicate_kind`` for cluster members."""
    from pyspark.sql import functions as F

    cc = config.cluster
    act = processed.filter(F.col(S.DROP_REASON).isNull() & (F.col(WORDS) > 0))
    empty = spark.createDataFrame([], "i long, j long")
    if not cc.enabled:
        stats.update(candidates=0, verified=0)
        return _members(spark, processed, empty, config, stats)
    heads = act.groupBy(WS_KEY).agg(F.min(S.ROW).alias("head"))
    mh = act.join(heads, WS_KEY).select(S.ROW, "head", WORDS, BANDS, SIG, S.TEXT_NORM)
    exact_edges = mh.filter(F.col(S.ROW) != F.col("head")).select(F.col("head").alias("i"), F.col(S.ROW).alias("j"))
    lsh = mh.filter((F.col(S.ROW) == F.col("head")) & (F.col(WORDS) >= cc.min_words) & F.col(BANDS).isNotNull())
    buckets = (
        lsh.select(S.ROW, F.posexplode(BANDS).alias("band", "key"))
        .groupBy("band", "key").agg(F.sort_array(F.collect_list(S.ROW)).alias("members"))
        .filter(F.size("members") > 1).select("members")
    )
    pairs = buckets.mapInArrow(bucket_pairs(cc.max_bucket), "i long, j long").distinct().cache()
    stats["candidates"] = pairs.count()
    side = lsh.select(S.ROW, S.TEXT_NORM, SIG)
    cands = (
        pairs.join(side.select(F.col(S.ROW).alias("i"), F.col(S.TEXT_NORM).alias("text_i"), F.col(SIG).alias("sig_i")), "i")
        .join(side.select(F.col(S.ROW).alias("j"), F.col(S.TEXT_NORM).alias("text_j"), F.col(SIG).alias("sig_j")), "j")
        .select("i", "j", "text_i", "text_j", "sig_i", "sig_j")
    )
    verified = cands.mapInArrow(verify_pairs(cc), "i long, j long").cache()
    stats["verified"] = verified.count()
    pairs.unpersist()
    edges = exact_edges.unionByName(verified)
    return _members(spark, processed, edges, config, stats)


def components(spark, edges, config: PipelineConfig):
    """``(_row, root)`` for every row on an edge; root = the component's smallest row."""
    n_edges = edges.count()
    if n_edges <= config.engine.driver_components_max:
        nodes, root = component_roots([(r[0], r[1]) for r in edges.collect()])
        rows = list(zip(nodes.tolist(), root.tolist()))
        return spark.createDataFrame(rows, f"{S.ROW} long, root long"), "driver"
    return label_propagation(spark, edges), "spark"


def label_propagation(spark, edges, max_rounds: int = 100):
    """Connected components inside Spark: every node takes the smallest label among itself and its
    neighbours until nothing changes (each round checkpointed, so the plan stays short)."""
    from pyspark.sql import functions as F

    both = edges.select(F.col("i").alias("a"), F.col("j").alias("b")).unionByName(
        edges.select(F.col("j").alias("a"), F.col("i").alias("b"))).distinct().localCheckpoint()
    labels = both.select(F.col("a").alias(S.ROW)).distinct().withColumn("root", F.col(S.ROW)).localCheckpoint()
    for _ in range(max_rounds):
        offers = both.join(labels.withColumnRenamed(S.ROW, "a"), "a").select(F.col("b").alias(S.ROW), "root")
        new = labels.unionByName(offers).groupBy(S.ROW).agg(F.min("root").alias("root")).localCheckpoint()
        changed = new.join(labels.withColumnRenamed("root", "old"), S.ROW).filter(F.col("root") != F.col("old")).count()
        labels = new
        if changed == 0:
            return labels
    raise DedupError(f"label propagation did not settle in {max_rounds} rounds; raise engine.driver_components_max")


def _members(spark, processed, edges, config: PipelineConfig, stats: dict):
    from pyspark.sql import functions as F

    comps, where = components(spark, edges, config)
    stats["components_on"] = where
    info = processed.select(S.ROW, S.DOC_ID, S.TEXT_NORM, KEEP_A, KEEP_B)
    members = comps.join(info, S.ROW)
    reps = members.groupBy("root").agg(F.min(F.struct(KEEP_A, KEEP_B, S.ROW)).alias("best")).select(
        "root", F.col("best." + S.ROW).alias("kept_row"))
    kept = info.select(F.col(S.ROW).alias("kept_row"), F.col(S.DOC_ID).alias("kept_id"), F.col(S.TEXT_NORM).alias("kept_text"))
    linked = (
        members.join(reps, "root").join(kept, "kept_row")
        .select(S.ROW, "root", "kept_row", "kept_id", F.col(S.TEXT_NORM).alias("text"), "kept_text")
    )
    others = linked.filter(F.col(S.ROW) != F.col("kept_row")).mapInArrow(
        link_members(), f"{S.ROW} long, {S.CLUSTER_ID} long, {S.DUPLICATE_OF} string, "
                        f"{S.DUP_SIMILARITY} double, {S.DUP_KIND} string, {S.KEPT_ROW} long")
    heads = linked.filter(F.col(S.ROW) == F.col("kept_row")).select(
        S.ROW, F.col("root").alias(S.CLUSTER_ID), F.lit(None).cast("string").alias(S.DUPLICATE_OF),
        F.lit(None).cast("double").alias(S.DUP_SIMILARITY), F.lit(None).cast("string").alias(S.DUP_KIND),
        F.col(S.ROW).alias(S.KEPT_ROW))
    out = others.unionByName(heads).cache()
    counts = {r[0]: r[1] for r in out.groupBy(S.DUP_KIND).count().collect()}
    stats.update(clusters=counts.get(None, 0), exact_duplicates=counts.get("exact", 0), near_duplicates=counts.get("near", 0))
    return out


def clean_spark(source: str, config: PipelineConfig, out_dir: str, *, spark=None) -> dict[str, Any]:
    """Run the whole pipeline on Spark and write the outputs under ``out_dir``; return the stats."""
    from pyspark.sql import functions as F

    t_start = time.perf_counter()
    spark = spark or session(config)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    docs_in = read_documents(spark, source, config).cache()
    n_records = docs_in.count()
    _raise_first_malformed(docs_in, config)
    timings["input"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    processed = docs_in.repartition(max(1, config.engine.shuffle_partitions), S.ROW).mapInArrow(
        process_documents(config), spark_schema(PROCESSED)).cache()
    counts: dict = {}
    for (text,) in processed.filter(F.col(STATS).isNotNull()).select(STATS).collect():
        counts = add_counts(counts, json.loads(text))
    docs_in.unpersist()
    timings["documents"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    cstats: dict = {}
    members = cluster(spark, processed, config, cstats)
    timings["cluster"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    reason = (
        F.when(F.col(S.DROP_REASON).isNotNull(), F.col(S.DROP_REASON))
        .when(F.col(S.DUP_KIND) == "exact", F.lit(S.REASON_EXACT))
        .when(F.col(S.DUP_KIND) == "near", F.lit(S.REASON_NEAR))
    )
    docs = processed.join(members, S.ROW, "left").withColumn(S.DROP_REASON, reason)
    if config.garble.scores_copies:
        cols = [S.TEXT, S.TEXT_NORM, S.ANCHOR_NORM, S.ANCHOR_RAW]
        near = docs.filter(F.col(S.DUP_KIND) == "near").select(S.ROW, S.KEPT_ROW, *cols)
        kept = processed.select(F.col(S.ROW).alias(S.KEPT_ROW), *[F.col(c).alias("kept_" + c) for c in cols])
        scored = near.join(kept, S.KEPT_ROW).drop(S.KEPT_ROW).mapInArrow(score_copies(config.garble), spark_schema(GARBLE_DOC))
        docs = docs.join(scored, S.ROW, "left").withColumn(S.G_LABEL, F.coalesce(F.col(S.G_LABEL), F.lit(NOT_SCORED)))
        docs = docs.withColumn(S.G_REASONS, F.coalesce(F.col(S.G_REASONS), F.array().cast(_reasons_type())))
    else:
        docs = docs.withColumn(S.G_SCORE, F.lit(None).cast("double")).withColumn(S.G_LABEL, F.lit(NOT_SCORED)).withColumn(
            S.G_REASONS, F.array().cast(_reasons_type()))
    docs = docs.withColumn(S.TEXT_CLEAN, F.when(F.col(S.DROP_REASON).isNull(), F.col(CLEAN_PRE))).cache()
    annotations = _annotations(docs)
    timings["garble_documents"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    paths = write_outputs(spark, docs, annotations, config, out_dir)
    timings["output"] = time.perf_counter() - t0

    by_reason = {r[0]: r[1] for r in docs.groupBy(S.DROP_REASON).count().collect()}
    kept_n = by_reason.pop(None, 0)
    stats: dict[str, Any] = {"input": {"records": n_records, "source": str(source), "seconds": round(timings["input"], 4),
                                       "duplicate_ids": _duplicate_ids(processed)}}
    for name, block in counts.items():
        stats[name] = block
    stats["cluster"] = {**cstats, "seconds": round(timings["cluster"], 4)}
    if config.garble.scores_copies:
        stats.setdefault("garble", {})["near_duplicates_garbled"] = docs.filter(F.col(S.G_LABEL) == "garbled").count()
    stats["result"] = {"kept": kept_n, "dropped": sum(by_reason.values()), "dropped_by_reason": dict(sorted(by_reason.items(), key=lambda kv: -kv[1]))}
    if kept_n + stats["result"]["dropped"] != n_records:
        raise AssertionError("kept + dropped != input: a record was lost")
    stats["engine"] = {"name": "spark", "master": config.engine.master, "version": spark.version,
                       "phase_seconds": {k: round(v, 4) for k, v in timings.items()}}
    stats["total_seconds"] = round(time.perf_counter() - t_start, 4)
    stats["config"] = config.to_dict()
    _write_stats_and_report(spark, docs, annotations, stats, config, paths)
    processed.unpersist()
    docs.unpersist()
    return stats


def _reasons_type():
    return spark_schema({S.G_REASONS: pl.List(reason_dtype())})[S.G_REASONS].dataType


def _duplicate_ids(docs, examples: int = 10) -> dict:
    """Ids given to more than one record, as :func:`dedup.pipeline.duplicate_ids` reports them."""
    from pyspark.sql import functions as F

    dup = (docs.groupBy(S.DOC_ID).agg(F.count("*").alias("n"), F.sort_array(F.collect_list(S.SOURCE_LINE)).alias("lines"))
           .filter(F.col("n") > 1).withColumn("first", F.col("lines")[0]))
    totals = dup.agg(F.count("*").alias("ids"), F.sum("n").alias("records")).collect()[0]
    shown = dup.orderBy("first").limit(examples).collect()
    return {"ids": int(totals["ids"] or 0), "records": int(totals["records"] or 0),
            "examples": [{"id": r[S.DOC_ID], "lines": list(r["lines"])[:10]} for r in shown]}


def _annotations(docs):
    from pyspark.sql import functions as F

    doc_cols = docs.select(S.ROW, S.DOC_ID, S.CLUSTER_ID, S.DUPLICATE_OF, S.DECODE_ERROR,
                           F.col(S.DROP_REASON).alias("_doc_reason"), F.explode(PASSAGES).alias("p"))
    flat = doc_cols.select(S.ROW, S.DOC_ID, S.CLUSTER_ID, S.DUPLICATE_OF, S.DECODE_ERROR, "_doc_reason", "p.*")
    flat = flat.withColumn(S.P_ACTION, F.when(F.col("_doc_reason").isNotNull(), F.lit("drop")).otherwise(F.col(S.P_ACTION)))
    flat = flat.withColumn(S.DROP_REASON, F.coalesce(F.col("_doc_reason"), F.col(S.DROP_REASON)))
    return flat.select(S.ROW, *ANNOTATION_COLUMNS)


def _extras(spark, docs):
    """The user's other fields, back as columns (their schema inferred from the JSON, as Spark does)."""
    from pyspark.sql import functions as F

    sample = docs.select(EXTRA_JSON).filter(F.col(EXTRA_JSON) != "{}")
    if sample.limit(1).count() == 0:
        return docs, []
    schema = spark.read.json(sample.rdd.map(lambda r: r[0])).schema
    out = docs.withColumn("_x", F.from_json(EXTRA_JSON, schema))
    names = [f.name for f in schema.fields]
    return out.select("*", *[F.col("_x." + n).alias(n) for n in names]).drop("_x"), names


def write_outputs(spark, docs, annotations, config: PipelineConfig, out_dir: str) -> dict[str, str]:
    from pyspark.sql import functions as F

    fmt = config.output.format
    if fmt == "same":
        fmt = "jsonl"
    ext = {"jsonl": "jsonl", "parquet": "parquet", "csv": "csv"}[fmt]
    out = out_dir.rstrip("/")
    if "://" not in out:
        Path(out).mkdir(parents=True, exist_ok=True)
    paths = {k: f"{out}/{k}.{ext}" for k in ("cleaned", "dropped", "dropped_passages")}
    paths["annotations"] = f"{out}/annotations.parquet"
    id_f, text_f = config.input.id_field, config.input.text_field
    docs_x, extra = _extras(spark, docs)
    extra = [c for c in extra if c not in (id_f, text_f)]
    kept = docs_x.filter(F.col(S.DROP_REASON).isNull()).orderBy(S.ROW).select(
        F.col(S.DOC_ID).alias(id_f), F.col(S.TEXT_CLEAN).alias(text_f), *extra)
    dropped = docs_x.filter(F.col(S.DROP_REASON).isNotNull()).orderBy(S.ROW).select(
        F.col(S.DOC_ID).alias(id_f), F.col(S.TEXT).alias(text_f), *extra, S.DROP_REASON, S.DUPLICATE_OF, S.DUP_SIMILARITY,
        S.G_SCORE, S.G_LABEL, S.G_REASONS, F.col(S.SOURCE_LINE).alias("source_line"), F.col(MALFORMED).alias("error"))
    ann = annotations.orderBy(S.ROW, S.P_INDEX).drop(S.ROW)
    _write(kept, paths["cleaned"], fmt)
    _write(dropped, paths["dropped"], fmt)
    _write(ann.filter(F.col(S.P_ACTION) == "drop"), paths["dropped_passages"], fmt)
    _write(ann, paths["annotations"], "parquet")
    paths["stats"] = f"{out}/stats.json"
    paths["report"] = f"{out}/report.md"
    return paths


def _write(frame, path: str, fmt: str) -> None:
    """Spark's committer writes to a temporary folder and marks success with ``_SUCCESS``."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, MapType, StructType

    w = frame
    if fmt == "csv":
        nested = [f.name for f in frame.schema.fields if isinstance(f.dataType, ArrayType | StructType | MapType)]
        for c in nested:
            w = w.withColumn(c, F.to_json(F.col(c)))
        w.write.mode("overwrite").option("header", True).csv(path)
    elif fmt == "parquet":
        w.write.mode("overwrite").parquet(path)
    else:
        w.write.mode("overwrite").option("ignoreNullFields", False).json(path)


def _write_stats_and_report(spark, docs, annotations, stats: dict, config: PipelineConfig, paths: dict) -> None:
    """stats.json and report.md, on the driver; the report's examples come from a small sample."""
    from pyspark.sql import functions as F

    from ..pipeline import Result

    n = max(1, config.output.report_examples) * 20
    cols = [S.ROW, S.DOC_ID, S.TEXT_NORM, S.NORM_CHANGES, S.DUP_KIND, S.DUP_SIMILARITY, S.DUPLICATE_OF, S.KEPT_ROW]
    changed = docs.filter(F.size(S.NORM_CHANGES) > 0).orderBy(S.ROW).limit(n)
    near = docs.filter(F.col(S.DUP_KIND).isNotNull()).orderBy(S.DUP_SIMILARITY).limit(n)
    kept_rows = [r[0] for r in near.select(S.KEPT_ROW).distinct().collect()]
    reps = docs.filter(F.col(S.ROW).isin(kept_rows)) if kept_rows else docs.limit(0)
    sample_docs = changed.select(*cols).unionByName(near.select(*cols)).unionByName(reps.select(*cols)).dropDuplicates([S.ROW])
    docs_pl = pl.from_arrow(sample_docs.toArrow()).sort(S.ROW)
    paired_rows = [r[0] for r in annotations.filter(F.col(S.P_ROLE).isNotNull()).select(S.ROW).distinct().limit(n).collect()]
    garbled = annotations.filter(F.col(S.G_LABEL) == "garbled").orderBy(F.col(S.G_SCORE).desc()).limit(n)
    sample_p = annotations.filter(F.col(S.ROW).isin(paired_rows)).unionByName(garbled).dropDuplicates([S.ROW, S.P_INDEX])
    passages_pl = pl.from_arrow(sample_p.toArrow()).sort(S.ROW, S.P_INDEX)
    stats.setdefault("garble", {}).setdefault("seconds", 0.0)
    stats["garble"].setdefault("by_label", {})
    stats["garble"].setdefault("garbled_by_mode", {})
    stats["garble"].setdefault("reasons_by_type", {})
    stats["garble"].setdefault("passages_dropped", 0)
    result = Result(docs_pl, passages_pl, stats, config, "jsonl", [])
    _driver_file(spark, paths["stats"], json.dumps(stats, indent=2, sort_keys=True) + "\n")
    _driver_file(spark, paths["report"], result.report())


def _driver_file(spark, path: str, text: str) -> None:
    """A small file written by the driver: atomically on a local disk, through Hadoop's FileSystem
    (temporary name, then rename) for ``hdfs://``, ``s3a://`` and the like."""
    from ..io import write_text

    if "://" not in path or path.startswith("file://"):
        write_text(Path(path.removeprefix("file://")), text)
        return
    jvm = spark.sparkContext._jvm
    target = jvm.org.apache.hadoop.fs.Path(path)
    tmp = jvm.org.apache.hadoop.fs.Path(path + ".tmp")
    fs = target.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    stream = fs.create(tmp, True)
    stream.write(bytearray(text.encode("utf-8")))
    stream.close()
    fs.delete(target, False)
    fs.rename(tmp, target)
