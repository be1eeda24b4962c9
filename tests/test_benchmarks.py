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
    assert tools == {"dedup", "datasketch_bulk", "hashing_floor", "dedup (1 core)"}
    for key in ("versions", "platform", "cpu_count", "seed", "params", "command"):
        assert record[key] is not None
    dedup = next(r for r in record["results"] if r["tool"] == "dedup")
    assert dedup["pair_precision"] == 1.0 and dedup["strong_pair_recall"] == 1.0
    report = next((tmp_path / "results").glob("*.md")).read_text()
    assert "| dedup |" in report and "datasketch_bulk" in report


def test_clean_beside_ftfy_smoke(tmp_path):
    """The whole-clean benchmark runs end to end on a few Reuters stories and writes its report."""
    import gzip

    from benchmarks.clean import main

    small = tmp_path / "small.jsonl"
    with gzip.open(need(REUTERS), "rt", encoding="utf-8") as fh:
        small.write_text("".join(next(fh) for _ in range(60)), encoding="utf-8")
    main(["--repeats", "1", "--synthetic", "0", "--corpora", str(small), "--out", str(tmp_path / "results"),
          "--cache", str(tmp_path / "cache")])
    record = json.loads(next((tmp_path / "results").glob("clean-*.json")).read_text())
    rows = record["results"]["small.jsonl"]
    assert [r["run"] for r in rows] == ["dedup clean (all cores)", "dedup clean (1 core)", "ftfy.fix_text alone (1 core)"]
    assert all(r["seconds_median"] > 0 and r["peak_rss_mb"] > 0 for r in rows)
    assert "normalise" in rows[1]["stage_seconds"]
    assert rows[2]["per_round_ratio_median"] == 1.0 and all(r["per_round_ratio_median"] > 0 for r in rows)
    assert "/ ftfy alone" in next((tmp_path / "results").glob("clean-*.md")).read_text()


def test_optional_peers_find_the_planted_copies():
    # each optional peer that is installed (the bench extra) runs on a tiny corpus and groups the
    # 1%-edit copies with their originals; a peer that is not installed is skipped
    import pytest

    from benchmarks import peers
    from benchmarks.corpus import make_corpus, reuters_sentences

    corpus = make_corpus(reuters_sentences(need(REUTERS)), 80, seed=5, words=120)
    close = corpus.filter(corpus["edit_rate"] == 0.01)
    index = {doc_id: k for k, doc_id in enumerate(corpus["id"].to_list())}
    ran = 0
    for name in ("rensa", "datatrove", "text_dedup"):
        if not peers.available(name):
            continue
        labels, _ = peers.PEERS[name](corpus["text"].to_list())
        assert all(labels[index[c]] == labels[index[t]] for c, t in close.select("id", "truth").iter_rows()), name
        assert len(set(labels.tolist())) > corpus.height // 2, name  # and does not merge everything
        ran += 1
    if not ran:
        pytest.skip("no optional peer installed (the bench extra)")
