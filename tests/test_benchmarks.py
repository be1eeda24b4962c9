"""Smoke test: the benchmark suite runs end to end on a tiny corpus, so it cannot rot."""

from __future__ import annotations

import json

import numpy as np

from .conftest import REUTERS, need


def test_quality_metrics_on_known_labels():
    from benchmarks.run import quality

    truth = np.array([0, 0, 1, 1, 2])
    assert quality(truth, truth) == {"pair_precision": 1.0, "pair_recall": 1.0, "adjusted_rand_index": 1.0}
    split = quality(np.array([0, 1, 2, 3, 4]), truth)
    assert split["pair_recall"] == 0.0 and split["pair_precision"] == 1.0
    merged = quality(np.zeros(5, dtype=int), truth)
    assert merged["pair_recall"] == 1.0 and merged["pair_precision"] == 0.2


def test_corpus_has_known_duplicates(tmp_path):
    from benchmarks.corpus import make_corpus

    sentences = [f"Sentence number {i} says the market moved {i % 7} points today." for i in range(500)]
    corpus = make_corpus(sentences, 100, seed=3, words=60)
    again = make_corpus(sentences, 100, seed=3, words=60)
    assert corpus.equals(again)
    assert corpus.height == 100 and (corpus["edit_rate"] > 0).sum() == 30
    assert corpus.filter(corpus["edit_rate"] == 0)["id"].to_list() == corpus.filter(corpus["edit_rate"] == 0)["truth"].to_list()


def test_suite_smoke(tmp_path):
    from benchmarks.run import main

    main(["--sizes", "120", "--repeats", "1", "--tools", "dedup", "datasketch_bulk", "hashing_floor",
          "--reuters", str(need(REUTERS)), "--out", str(tmp_path / "results"), "--cache", str(tmp_path / "cache")])
    record = json.loads(next((tmp_path / "results").glob("*.json")).read_text())
    tools = {r["tool"] for r in record["results"]}
    assert tools == {"dedup", "datasketch_bulk", "hashing_floor", "dedup (1 thread)"}
    for key in ("versions", "platform", "cpu_count", "seed", "params", "command"):
        assert record[key] is not None
    dedup = next(r for r in record["results"] if r["tool"] == "dedup")
    assert dedup["pair_precision"] == 1.0 and dedup["strong_pair_recall"] == 1.0
    report = next((tmp_path / "results").glob("*.md")).read_text()
    assert "| dedup |" in report and "datasketch_bulk" in report
