"""The out-of-core run (``--memory-budget``): the in-memory run's outputs, within the budget."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from benchmarks.corpus import news_file
from dedup.config import load_config, parse_size
from dedup.errors import ConfigError

from .conftest import REUTERS, ROOT, cli, kill_after_batches, need, reuters_head, without_seconds

TEXT_FILES = ("cleaned.jsonl", "dropped.jsonl", "dropped_passages.jsonl")


def _stats_without_engine(path: Path) -> str:
    stats = json.loads(path.read_text())
    stats.pop("engine", None)  # how the run went: streamed in how many batches, its memory
    stats["config"]["engine"].pop("memory_budget")  # and the settings that only say how to batch
    stats["config"]["output"].pop("checkpoint_documents")
    return without_seconds(json.dumps(stats, indent=2, sort_keys=True))


def _same_outputs(a: Path, b: Path, fmt: str = "jsonl") -> None:
    """Two output folders hold the same run: data files, report and stats (but for seconds)."""
    for name in ("cleaned", "dropped", "dropped_passages"):
        if fmt == "jsonl":
            assert (a / f"{name}.jsonl").read_bytes() == (b / f"{name}.jsonl").read_bytes(), name
        else:
            fa, fb = pl.read_parquet(a / f"{name}.{fmt}"), pl.read_parquet(b / f"{name}.{fmt}")
            assert fa.columns == fb.columns and fa.height == fb.height, name
            assert fa.equals(fb), name
    assert pl.read_parquet(a / "annotations.parquet").equals(pl.read_parquet(b / "annotations.parquet"))
    assert without_seconds((a / "report.md").read_text()) == without_seconds((b / "report.md").read_text())
    assert _stats_without_engine(a / "stats.json") == _stats_without_engine(b / "stats.json")


@pytest.mark.parametrize("budget, processes", [("64MB", 1), ("256MB", 2)])
def test_streaming_writes_what_the_in_memory_run_writes(tmp_path, budget, processes):
    """6,000 Reuters stories (real exact and near copies among them) in batches of at most 700
    documents: every output equals the in-memory run's, bytes for the JSONL files. With 256 MB, two
    processes share the batches (each stages, saves and finishes whole batches, in any order; the
    outputs are written in input order), and 64 MB keeps the run in one (PROCESS_BUDGET)."""
    src = reuters_head(tmp_path, 6000)
    assert cli("clean", src, "-o", tmp_path / "memory", "-q", "--set", "engine.processes=2").returncode == 0
    proc = cli("clean", src, "-o", tmp_path / "stream", "--memory-budget", budget, "--set", "output.checkpoint_documents=700",
               "--set", "engine.processes=2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.decode().splitlines()[-1].startswith("streamed in")  # and no warning
    stats = json.loads((tmp_path / "stream" / "stats.json").read_text())
    assert stats["engine"]["batches"] >= 9 and stats["cluster"]["near_duplicates"] > 0 and stats["cluster"]["exact_duplicates"] > 0
    assert stats["engine"]["processes"] == processes
    assert stats["engine"]["data_peak_bytes"] <= parse_size(budget, "budget")
    _same_outputs(tmp_path / "memory", tmp_path / "stream")
    assert not (tmp_path / "stream" / ".dedup-work").exists()


def test_streaming_with_other_rules_and_parquet_output(tmp_path):
    """keep = earliest (dates read per batch) and longest, garbled passages dropped, Parquet output,
    and (with longest) near copies left unscored: the same as in memory."""
    src = reuters_head(tmp_path, 2500)
    for keep, copies in (("earliest", "true"), ("longest", "false")):
        setting = ["--set", f"cluster.keep={keep}", "--set", "garble.action=drop", "--format", "parquet",
                   "--set", f"garble.near_copies={copies}"]
        assert cli("clean", src, "-o", tmp_path / f"m-{keep}", "-q", *setting).returncode == 0
        proc = cli("clean", src, "-o", tmp_path / f"s-{keep}", "-q", "--memory-budget", "64MB",
                   "--set", "output.checkpoint_documents=300", *setting)
        assert proc.returncode == 0, proc.stderr
        _same_outputs(tmp_path / f"m-{keep}", tmp_path / f"s-{keep}", "parquet")


def test_streaming_csv_fields_that_vary_between_batches(tmp_path):
    """CSV with quoted newlines; a field that is empty in the first batches and set later, one only
    the later records have, and ids given twice in different batches: each batch infers its own
    types, the joined outputs hold them all, the repeated ids are reported as in memory."""
    rows = ['id,text,section']
    for k in range(60):
        section = "" if k < 30 else f"s{k % 3}"
        rows.append(f'c{k},"Story {k} says ""this"",\nthen goes on about item {k} and the city council.",{section}')
    src = tmp_path / "in.csv"
    src.write_text("\n".join(rows) + "\n", encoding="utf-8")
    jsonl = tmp_path / "in.jsonl"
    with jsonl.open("w", encoding="utf-8") as fh:
        for k in range(60):
            rec = {"id": f"j{k % 50}", "text": f"Story {k} is about the harbour and the {k} boats in it."}  # ids 0-9 twice
            if k >= 40:
                rec["late"] = k
            fh.write(json.dumps(rec) + "\n")
    for name, path, fmt in (("csv", src, "csv"), ("csv-pq", src, "parquet"), ("json", jsonl, "parquet")):
        setting = ["--format", fmt]
        assert cli("clean", path, "-o", tmp_path / f"m-{name}", "-q", *setting).returncode == 0
        proc = cli("clean", path, "-o", tmp_path / f"s-{name}", "-q", "--memory-budget", "64MB",
                   "--set", "output.checkpoint_documents=7", *setting)
        assert proc.returncode == 0, proc.stderr
        if fmt == "csv":
            for f in ("cleaned.csv", "dropped.csv"):
                assert (tmp_path / f"m-{name}" / f).read_bytes() == (tmp_path / f"s-{name}" / f).read_bytes(), f
        else:
            _same_outputs(tmp_path / f"m-{name}", tmp_path / f"s-{name}", "parquet")
    dup = json.loads((tmp_path / "s-json" / "stats.json").read_text())["input"]["duplicate_ids"]
    assert dup["ids"] == 10 and dup["examples"][0] == {"id": "j0", "lines": [1, 51]}
    late = pl.read_parquet(tmp_path / "s-json" / "cleaned.parquet")["late"]
    assert late.null_count() == 40 and late.drop_nulls().to_list() == list(range(40, 60))


def test_streaming_bad_input_as_in_memory(tmp_path):
    """Malformed lines and a .gz cut short: under skip, the same records kept and dropped (with
    their line numbers); under raise, the same one-line error."""
    lines = gzip.decompress(need(REUTERS).read_bytes()).splitlines(True)[:400]
    lines[5] = b'{"id": "broken", "text": "no end\n'
    lines[9] = b"[1, 2]\n"
    data = gzip.compress(b"".join(lines))
    src = tmp_path / "cut.jsonl.gz"
    src.write_bytes(data[: len(data) * 2 // 3])
    setting = ["--on-error", "skip"]
    assert cli("clean", src, "-o", tmp_path / "m", "-q", *setting).returncode == 0
    proc = cli("clean", src, "-o", tmp_path / "s", "-q", "--memory-budget", "64MB", "--set", "output.checkpoint_documents=50", *setting)
    assert proc.returncode == 0, proc.stderr
    _same_outputs(tmp_path / "m", tmp_path / "s")
    dropped = pl.read_ndjson(tmp_path / "s" / "dropped.jsonl")
    assert {6, 10} <= set(dropped.filter(pl.col("drop_reason") == "malformed")["source_line"].to_list())
    assert dropped["error"].str.contains("ends early or is damaged").any()
    for name, data in (("empty.jsonl", b""), ("blank.jsonl", b"\n\n"), ("header-only.csv", b"id,text\n")):
        path = tmp_path / name  # no records at all: every output still written, with its columns
        path.write_bytes(data)
        assert cli("clean", path, "-o", tmp_path / f"m-{name}", "-q", "--format", "jsonl").returncode == 0
        proc = cli("clean", path, "-o", tmp_path / f"s-{name}", "-q", "--format", "jsonl", "--memory-budget", "64MB")
        assert proc.returncode == 0, proc.stderr
        _same_outputs(tmp_path / f"m-{name}", tmp_path / f"s-{name}")
    a = cli("clean", src, "-o", tmp_path / "m2")
    b = cli("clean", src, "-o", tmp_path / "s2", "--memory-budget", "64MB")
    assert a.returncode == b.returncode == 1
    assert a.stderr == b.stderr and a.stderr.decode().startswith("dedup error: ") and len(a.stderr.splitlines()) == 1


@pytest.mark.parametrize("budget", ["64MB", "256MB"])
def test_streaming_resume_after_kill(tmp_path, budget):
    """Kill a streaming run after some batches; --resume finishes with the bytes of a run never
    interrupted, reusing the finished batches (with 256 MB, two processes finish them in any order)."""
    src = reuters_head(tmp_path, 4000)
    setting = ["--memory-budget", budget, "--set", "output.checkpoint_documents=300", "--set", "engine.processes=2"]
    assert cli("clean", src, "-o", tmp_path / "whole", "-q", *setting).returncode == 0
    out = tmp_path / "killed"
    work = out / ".dedup-work"
    done = kill_after_batches(src, out, setting, 4)
    assert done >= 4
    proc = cli("clean", src, "-o", out, "-q", "--resume", *setting)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["input"]["resumed_batches"] >= done and stats["engine"]["batches"] > done
    for f in TEXT_FILES:
        assert (out / f).read_bytes() == (tmp_path / "whole" / f).read_bytes(), f
    assert pl.read_parquet(out / "annotations.parquet").equals(pl.read_parquet(tmp_path / "whole" / "annotations.parquet"))
    assert not work.exists()


def test_memory_budget_is_a_size():
    assert load_config(None, ['engine.memory_budget="1.5GiB"']).engine.memory_budget == "1.5GiB"
    with pytest.raises(ConfigError, match="is not a size"):
        load_config(None, ['engine.memory_budget="lots"'])
    from dedup.stream import Budget

    with pytest.raises(ConfigError, match="too small"):
        Budget.of(load_config(None, ['engine.memory_budget="10MB"']))


def test_saved_arrays_read_back_as_numpy_saved_them(tmp_path):
    """Clustering's reader of the batches' .npy files (header parsed once per file, then a memory
    map) gives what np.load gives: C- and Fortran-ordered arrays, empty ones, read twice."""
    import numpy as np

    from dedup.pipeline import Checkpoints
    from dedup.stream import _Spill

    work = Checkpoints(tmp_path / "work", "fingerprint", False)
    spill = _Spill(work)
    arrays = [np.arange(12, dtype=np.uint64).reshape(3, 4), np.asfortranarray(np.arange(12, dtype=np.uint32).reshape(3, 4)),
              np.empty((0, 128), np.uint32), np.empty((32, 0), np.uint64)]
    for k, a in enumerate(arrays):
        np.save(work.path("sig", k, "npy"), a)
    for _ in range(2):
        for k, a in enumerate(arrays):
            got = spill.array("sig", k)
            assert got.shape == a.shape and got.dtype == a.dtype and np.array_equal(got, a)
    # sent to a worker (pass 3), the spill leaves its header cache behind, and reads as before
    import pickle

    sent = pickle.loads(pickle.dumps(spill))
    assert spill._headers and not sent._headers and np.array_equal(sent.array("sig", 1), arrays[1])


def test_a_run_over_its_budget_says_so():
    """The engine block of a real run that went over: the 1M-document benchmark corpus at 512 MB,
    garble off, before clustering was linked in numpy (its clustering pass crossed the budget)."""
    from dedup.stream import over_budget_warning

    over = {"memory_budget": "512MB", "data_peak_bytes": 619_073_536,
            "data_peak_bytes_by_pass": {"documents": 259_391_488, "cluster": 615_260_160, "verdicts": 619_073_536,
                                        "outputs": 619_073_536}}
    assert over_budget_warning(over, 512 * 10**6) == (
        "dedup: warning: memory for data peaked at 619 MB, above the 512MB budget, in the cluster pass; "
        "give a larger --memory-budget (README: what the budget does not bound)")
    within = {"memory_budget": "512MB", "data_peak_bytes": 468_017_152,  # the same run on the numpy linking
              "data_peak_bytes_by_pass": {"documents": 246_906_880, "cluster": 463_142_912, "verdicts": 468_017_152,
                                          "outputs": 468_017_152}}
    assert over_budget_warning(within, 512 * 10**6) is None
    late = {**within, "data_peak_bytes": 513 * 10**6}  # over only after the last pass's reading
    assert "above the 512MB budget, in the outputs pass" in over_budget_warning(late, 512 * 10**6)


def test_peak_memory_stays_under_the_budget_on_an_input_several_times_larger(tmp_path):
    """A 200 MB corpus (more than 3x the budget) through a 64 MB budget: the memory the run takes
    for data (its peak resident set, measured by the kernel for the child process, above what it
    held before reading any input) stays under the budget, in every pass. Garble scoring is off to
    keep the test's time down; ``python -m benchmarks.stream`` measures the whole pipeline."""
    budget = 64 * 10**6
    src = tmp_path / "big.jsonl"
    n = news_file(need(REUTERS), src, 200 * 10**6)
    assert src.stat().st_size >= 3 * budget
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "dedup", "clean", str(src), "-o", str(out), "-q", "--memory-budget", "64MB",
                             "--set", "garble.enabled=false"], cwd=ROOT, stderr=subprocess.PIPE)
    sampled = 0  # the child's resident set, read from /proc while it runs: a floor for its peak
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            sampled = max(sampled, int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1]) * 1024)
        except (OSError, StopIteration):
            pass
        time.sleep(0.02)
    err = proc.stderr.read().decode()
    assert proc.returncode == 0, err
    assert "budget" not in err, err  # no warning that it went over
    stats = json.loads((out / "stats.json").read_text())
    eng = stats["engine"]
    peak = eng["peak_rss_bytes"]  # the kernel's high-water mark of the child's memory (VmHWM)
    assert 0 < sampled <= peak + 2**20, (sampled, eng)  # the run reads its peak just before its last small writes
    assert peak - eng["base_rss_bytes"] <= budget, (peak, eng)
    assert max(eng["data_peak_bytes_by_pass"].values()) <= budget
    assert stats["input"]["records"] == n == stats["result"]["kept"] + stats["result"]["dropped"]
    assert stats["cluster"]["near_duplicates"] > n // 10  # the copies were found, across batches
    assert eng["batches"] > 100
