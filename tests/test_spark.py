"""The Spark engine gives the polars engine's results: a real local SparkSession on real corpora.

Skipped cleanly when pyspark or a Java runtime is missing; ``.ci/run`` installs both, so CI runs it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from benchmarks.engines import read_output
from dedup import clean, load_config

from .conftest import SEED, reuters_head
from .test_cli import run

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    pytest.skip("no Java runtime: Spark cannot start (apt-get install openjdk-17-jre-headless)", allow_module_level=True)

# Outputs compared column by column; everything a user reads from the run.
KEYS = {"cleaned": ["id"], "dropped": ["id"], "annotations": ["doc_id", "passage"]}


@pytest.fixture(scope="module")
def spark():
    from dedup.engines.spark import session

    cfg = load_config(None, ["engine.shuffle_partitions=4", "engine.batch_documents=500", 'engine.driver_memory="1g"'])
    s = session(cfg)
    s.conf.set("spark.sql.shuffle.partitions", "4")
    yield s


def _digest(frame: pl.DataFrame) -> str:
    return hashlib.sha256(frame.write_ndjson().encode()).hexdigest()


def _same_outputs(local: Path, spark_out: Path, fmt: str = "jsonl") -> dict:
    digests = {}
    for name, key in KEYS.items():
        f = "parquet" if name == "annotations" else fmt
        ext = "parquet" if f == "parquet" else "jsonl"
        a = read_output(local / f"{name}.{ext}", f)
        b = read_output(spark_out / f"{name}.{ext}", f)
        assert sorted(a.columns) == sorted(b.columns), name
        a = a.select(sorted(a.columns)).sort(key)
        b = b.select(sorted(a.columns)).sort(key).cast(dict(a.schema), strict=False)
        assert a.height == b.height, name
        for c in a.columns:
            assert a[c].equals(b[c]), (name, c)
        digests[name] = (_digest(a), _digest(b))
        assert digests[name][0] == digests[name][1]
    return digests


def test_spark_matches_polars_on_reuters(tmp_path, spark):
    """6,000 real stories: clusters, representatives, within-document pairs and garble scores agree."""
    from dedup.engines.spark import clean_spark

    src = reuters_head(tmp_path, 6000)
    cfg = load_config(None, ["engine.shuffle_partitions=4", "engine.batch_documents=500"])
    local = clean(src, cfg)
    local.write(tmp_path / "local")
    stats = clean_spark(str(src), cfg, str(tmp_path / "spark"), spark=spark)
    assert stats["result"] == local.stats["result"]
    assert stats["result"]["dropped_by_reason"]["near_duplicate"] > 50  # the comparison has something to compare
    for k in ("candidates", "verified", "clusters", "exact_duplicates", "near_duplicates"):
        assert stats["cluster"][k] == local.stats["cluster"][k], k
    assert stats["engine"]["name"] == "spark" and stats["cluster"]["components_on"] == "driver"
    _same_outputs(tmp_path / "local", tmp_path / "spark")
    assert (tmp_path / "spark" / "cleaned.jsonl" / "_SUCCESS").exists()
    report = (tmp_path / "spark" / "report.md").read_text(encoding="utf-8")
    assert f"{stats['result']['kept']} + {stats['result']['dropped']} = 6000" in report


def test_label_propagation_and_other_keep_rule(tmp_path, spark):
    """Components found inside Spark (label propagation) give the driver's answer; keep = earliest,
    Parquet output and near copies left unscored agree with the polars engine too."""
    from dedup.engines.spark import clean_spark

    src = reuters_head(tmp_path, 2500)
    over = ["cluster.keep=earliest", "output.format=parquet", "engine.driver_components_max=0", "garble.near_copies=false"]
    cfg = load_config(None, over)
    local = clean(src, cfg)
    local.write(tmp_path / "local", "parquet")
    stats = clean_spark(str(src), cfg, str(tmp_path / "spark"), spark=spark)
    assert stats["cluster"]["components_on"] == "spark"
    assert stats["result"] == local.stats["result"]
    _same_outputs(tmp_path / "local", tmp_path / "spark", "parquet")


def test_seed_and_malformed_lines(tmp_path, spark):
    """The seed (as a txt file, read on the driver) and a JSONL file with bad lines: same outcome."""
    from dedup.engines.spark import clean_spark
    from dedup.errors import InputError

    cfg = load_config(None, [])
    stats = clean_spark(str(SEED), cfg, str(tmp_path / "seed"), spark=spark)
    local = clean(SEED, cfg)
    assert stats["pairs"] == {k: v for k, v in local.stats["pairs"].items() if k != "seconds"}
    assert stats["garble"]["by_label"] == local.stats["garble"]["by_label"]

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "Fine text here."}\n\n{not json\n{"id": "c", "body": "no text"}\n', encoding="utf-8")
    with pytest.raises(InputError) as local_err:
        clean(bad, cfg)
    with pytest.raises(InputError) as spark_err:
        clean_spark(str(bad), cfg, str(tmp_path / "bad"), spark=spark)
    assert str(spark_err.value) == str(local_err.value)
    skip = load_config(None, ["input.on_error=skip"])
    stats = clean_spark(str(bad), skip, str(tmp_path / "bad"), spark=spark)
    assert stats["result"] == clean(bad, skip).stats["result"] == {"kept": 1, "dropped": 2, "dropped_by_reason": {"malformed": 2}}
    dups = tmp_path / "dups.jsonl"
    dups.write_text("".join(json.dumps({"id": i, "text": f"Story {k} about wheat prices today."}) + "\n"
                            for k, i in enumerate(["a", "b", "a", "c", "b", "a"])), encoding="utf-8")
    assert clean_spark(str(dups), cfg, str(tmp_path / "dups"), spark=spark)["input"]["duplicate_ids"] == \
        clean(dups, cfg).stats["input"]["duplicate_ids"] == {"ids": 2, "records": 5, "examples": [
            {"id": "a", "lines": [1, 3, 6]}, {"id": "b", "lines": [2, 5]}]}
    dropped = read_output(tmp_path / "bad" / "dropped.jsonl", "jsonl").sort("source_line")
    assert dropped["source_line"].to_list() == [3, 4]
    assert dropped["error"][0].startswith(f"{bad} line 3: not valid JSON")


def test_truncated_gzip_keeps_what_came_before(tmp_path, spark):
    """A .gz cut in half does not fail the Spark job: the records before the damage are kept and the
    damage is one dropped record, as the local engine does; under on_error=raise, the same one-line error."""
    import gzip

    from dedup.engines.spark import clean_spark
    from dedup.errors import InputError

    data = gzip.compress("".join(json.dumps({"id": str(i), "text": f"Story number {i} about wheat and {i % 7} ships."}) + "\n"
                                 for i in range(400)).encode())
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(data[: len(data) // 2])
    cfg = load_config(None, [])
    with pytest.raises(InputError) as local_err:
        clean(cut, cfg)
    with pytest.raises(InputError) as spark_err:
        clean_spark(str(cut), cfg, str(tmp_path / "raise"), spark=spark)
    assert str(spark_err.value) == str(local_err.value)
    skip = load_config(None, ["input.on_error=skip", "output.format=jsonl"])
    local = clean(cut, skip)
    local.write(tmp_path / "local")
    stats = clean_spark(str(cut), skip, str(tmp_path / "spark"), spark=spark)
    assert stats["result"] == local.stats["result"]
    assert stats["result"]["kept"] > 50 and stats["result"]["dropped_by_reason"] == {"malformed": 1}
    _same_outputs(tmp_path / "local", tmp_path / "spark")


def test_upper_case_gz_suffix_is_decompressed_as_locally(tmp_path, spark):
    """``STORIES.JSONL.GZ``: the local reader takes any case of ``.gz`` as gzip, and so does Hadoop's
    codec lookup (checked here, so that the Spark engine never reads compressed bytes as lines)."""
    import gzip

    from dedup.engines.spark import clean_spark

    src = tmp_path / "STORIES.JSONL.GZ"
    # 40 stories, the last one a copy of the first: one exact duplicate dropped
    src.write_bytes(gzip.compress("".join(json.dumps({"id": str(i), "text": f"Story {i % 39} about wheat and {i % 39 % 5} ships in port."})
                                          + "\n" for i in range(40)).encode()))
    cfg = load_config(None, ["output.format=jsonl"])
    local = clean(src, cfg)
    local.write(tmp_path / "local")
    stats = clean_spark(str(src), cfg, str(tmp_path / "spark"), spark=spark)
    assert stats["result"] == local.stats["result"]
    assert local.stats["result"] == {"kept": 39, "dropped": 1, "dropped_by_reason": {"exact_duplicate": 1}}
    _same_outputs(tmp_path / "local", tmp_path / "spark")


def test_csv_with_embedded_newlines_and_quotes(tmp_path, spark):
    """CSV is read by Spark as the local reader reads it: quoted fields spanning lines, doubled quotes."""
    from dedup.engines.spark import clean_spark

    src = tmp_path / "c.csv"
    body = 'Biden said ""we will respond"" on Tuesday.\n\nA second paragraph, after a blank line.'
    src.write_text(f'id,text,source\n1,"{body}",wire\n2,"{body}",wire\n3,Short note here.,blog\n', encoding="utf-8")
    cfg = load_config(None, ["output.format=jsonl"])
    local = clean(src, cfg)
    local.write(tmp_path / "local")
    stats = clean_spark(str(src), cfg, str(tmp_path / "spark"), spark=spark)
    assert stats["result"] == local.stats["result"] == {"kept": 2, "dropped": 1, "dropped_by_reason": {"exact_duplicate": 1}}
    _same_outputs(tmp_path / "local", tmp_path / "spark")
    kept = read_output(tmp_path / "spark" / "cleaned.jsonl", "jsonl").sort("id")
    assert kept["text"][0].startswith('Biden said "we will respond"') and kept["source"].to_list() == ["wire", "blog"]


def test_cli_engine_option(tmp_path):
    src = tmp_path / "two.jsonl"
    text = "Biden and Putin met in Geneva in June. They will speak by phone on Tuesday, the White House said."
    src.write_text(json.dumps({"id": "a", "text": text}) + "\n" + json.dumps({"id": "b", "text": text}) + "\n", encoding="utf-8")
    proc = run("clean", str(src), "-o", str(tmp_path / "out"), "--engine", "spark", "--master", "local[1]")
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert "2 records: 1 kept, 1 dropped (exact_duplicate 1) on Spark local[1]" in proc.stderr.decode()
    kept = read_output(tmp_path / "out" / "cleaned.jsonl", "jsonl")
    assert kept["id"].to_list() == ["a"]
