"""Runs that survive: determinism, order and batch independence, kill -9 mid-run, and safety."""

from __future__ import annotations

import ast
import gzip
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dedup import clean, load_config

from .conftest import REUTERS, ROOT, SEED, cli as _cli, kill_after_batches, need, reuters_head, without_seconds as _without_seconds

DATA_FILES = ("cleaned.jsonl", "dropped.jsonl", "dropped_passages.jsonl", "annotations.parquet")


def test_same_input_same_bytes(tmp_path):
    """Two runs, a run on one polars thread and one process, and runs whose document stage is cut
    into five batches (a pool of two worker processes, or none) write byte-identical data files;
    stats and report differ only in their seconds."""
    src = reuters_head(tmp_path, 2000)
    one = dict(os.environ, POLARS_MAX_THREADS="1")
    batches = ["--set", "output.checkpoint_documents=400"]
    runs = {"a": (None, []), "b": (None, []), "one-thread": (one, ["--set", "engine.processes=1"]),
            "pool": (None, batches + ["--set", "engine.processes=2"]), "batched": (None, batches + ["--set", "engine.processes=1"])}
    for name, (env, extra) in runs.items():
        proc = _cli("clean", src, "-o", tmp_path / name, "-q", *extra, env=env)
        assert proc.returncode == 0, proc.stderr
    for f in DATA_FILES:
        a = (tmp_path / "a" / f).read_bytes()
        assert all(a == (tmp_path / n / f).read_bytes() for n in runs), f
    reports = {_without_seconds((tmp_path / n / "report.md").read_text()) for n in runs}
    assert len(reports) == 1
    stats = {n: json.loads(_without_seconds((tmp_path / n / "stats.json").read_text())) for n in runs}
    assert stats["pool"]["config"]["engine"]["processes"] == 2  # the settings differ, and only they
    assert len({json.dumps({k: v for k, v in st.items() if k != "config"}, sort_keys=True) for st in stats.values()}) == 1


_SENTENCES: list[str] = []


def _sentences() -> list[str]:
    if not _SENTENCES:
        with gzip.open(need(REUTERS), "rt", encoding="utf-8") as fh:
            for k, line in enumerate(fh):
                if k > 400:
                    break
                _SENTENCES.extend(s.strip() for s in re.split(r"(?<=[.!?])\s+", json.loads(line)["text"]) if len(s.split()) > 6)
    return _SENTENCES


@st.composite
def corpora(draw):
    """Documents of real sentences, with copies, near copies (a sentence dropped) and repeated
    captions inside documents."""
    sents = _sentences()
    n = draw(st.integers(3, 14))
    docs = []
    for k in range(n):
        kind = draw(st.sampled_from(["new", "new", "copy", "near"])) if docs else "new"
        if kind == "new":
            picks = draw(st.lists(st.integers(0, len(sents) - 1), min_size=3, max_size=9))
            paras = [sents[i] for i in picks]
            if draw(st.booleans()):
                paras.insert(1, paras[0])  # a passage printed twice
            text = "\n\n".join(paras)
        else:
            base = draw(st.sampled_from(docs))["text"]
            text = base if kind == "copy" else "\n\n".join(base.split("\n\n")[:-1] or [base])
        docs.append({"id": f"d{k}", "text": text})
    return docs


def _partition(result) -> set[frozenset]:
    d = result.documents
    groups: dict = {}
    for doc_id, cid in zip(d["doc_id"], d["cluster_id"]):
        groups.setdefault(cid if cid is not None else doc_id, set()).add(doc_id)
    return {frozenset(g) for g in groups.values()}


def _pairs(result) -> set[tuple]:
    p = result.passages.filter(pl.col("role").is_not_null())
    return set(p.select("doc_id", "passage", "partner", "role", "pair_kind").iter_rows())


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(corpora(), st.randoms(use_true_random=False), st.integers(1, 6))
def test_results_do_not_depend_on_order_or_batch_size(docs, rnd, batch):
    base = clean(pl.DataFrame(docs))
    shuffled = list(docs)
    rnd.shuffle(shuffled)
    other = clean(pl.DataFrame(shuffled), load_config(None, [f"pairs.batch_passages={batch}", "pairs.batch_chars=1000"]))
    for r in (base, other):
        res = r.stats["result"]
        assert res["kept"] + res["dropped"] == len(docs)  # nothing lost
    assert _partition(base) == _partition(other)
    assert _pairs(base) == _pairs(other)
    kept = lambda r: {frozenset(g) for g in _partition(r)}  # noqa: E731
    assert kept(base) == kept(other)


def test_kill_minus_nine_leaves_no_output_that_looks_complete(tmp_path):
    """A real run killed at random moments: a file under its final name is always whole, and
    stats.json (written last) is there only when every output is."""
    src = need(REUTERS)
    out = tmp_path / "out"
    rng = random.Random(7)
    # a finished run first, so that later kills land on a folder with an earlier run's files in it
    assert _cli("clean", src, "-o", out, "-q").returncode == 0
    trials = []
    for delay in sorted(rng.uniform(0.5, 12.0) for _ in range(5)):
        proc = subprocess.Popen([sys.executable, "-m", "dedup", "clean", str(src), "-o", str(out), "-q"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        present = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
        for name in present:
            path = out / name
            if name.endswith(".parquet"):
                pl.read_parquet(path)
            elif name.endswith(".jsonl"):
                pl.read_ndjson(path)
            elif name.endswith(".json"):
                json.loads(path.read_text())
        if (out / "stats.json").exists():  # then the files beside it are that run's, complete
            assert {"cleaned.jsonl", "dropped.jsonl", "dropped_passages.jsonl", "annotations.parquet", "report.md"} <= set(present)
            stats = json.loads((out / "stats.json").read_text())
            assert pl.read_ndjson(out / "cleaned.jsonl").height == stats["result"]["kept"]
            assert pl.read_ndjson(out / "dropped.jsonl").height == stats["result"]["dropped"]
        trials.append((round(delay, 1), proc.returncode == -signal.SIGKILL))
    assert any(killed for _, killed in trials)  # at least one kill landed mid-run
    # the next run clears the debris and finishes
    assert _cli("clean", src, "-o", out, "-q").returncode == 0
    assert not list(out.glob(".*.tmp"))


FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "marshal", "shelve", "dill", "cloudpickle"}


def test_no_eval_exec_or_pickle_in_the_package():
    for path in sorted((ROOT / "dedup").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in FORBIDDEN_CALLS, f"{path}:{node.lineno}"
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & FORBIDDEN_MODULES, f"{path}:{node.lineno}"
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in FORBIDDEN_MODULES, f"{path}:{node.lineno}"
            if isinstance(node, ast.keyword) and node.arg == "shell":
                assert not (isinstance(node.value, ast.Constant) and node.value.value), f"{path}:{node.lineno}"


def test_no_network_and_no_path_escape(tmp_path, monkeypatch):
    """The whole job runs with every socket refused, and ids that look like paths stay data."""
    def refuse(*args, **kwargs):
        raise AssertionError("dedup tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    src = tmp_path / "in" / "evil.jsonl"
    src.parent.mkdir()
    texts = SEED.read_text(encoding="utf-8").split("\n\n")
    src.write_text(
        json.dumps({"id": "../../escaped", "text": "\n\n".join(texts[:40])}) + "\n"
        + json.dumps({"id": "/tmp/abs-escaped", "text": "<script>alert(1)</script> and a paragraph of text."}) + "\n",
        encoding="utf-8",
    )
    before = set(tmp_path.rglob("*"))
    result = clean(src)
    result.write(tmp_path / "out")
    created = set(tmp_path.rglob("*")) - before
    assert created and all((tmp_path / "out") in p.parents or p == tmp_path / "out" for p in created)
    assert not Path("/tmp/abs-escaped").exists()
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "<script>" not in report


def test_resume_after_kill_gives_the_same_bytes(tmp_path):
    """Kill a real run after a few checkpointed batches; --resume finishes it with the bytes of a run
    that was never interrupted, reusing the finished batches."""
    src = need(REUTERS)
    setting = ["--set", "output.checkpoint_documents=1000"]
    assert _cli("clean", src, "-o", tmp_path / "whole", "-q", *setting).returncode == 0
    out = tmp_path / "killed"
    work = out / ".dedup-work"
    done = kill_after_batches(src, out, setting, 3)
    assert 3 <= done < 11
    # resuming with another config is refused, with the fix
    bad = _cli("clean", src, "-o", out, "-q", "--resume", "--set", "output.checkpoint_documents=500")
    assert bad.returncode == 1 and b"cannot resume: the input or the config changed" in bad.stderr
    proc = _cli("clean", src, "-o", out, "-q", "--resume", *setting)
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["input"]["resumed_batches"] == done
    for f in DATA_FILES:
        assert (out / f).read_bytes() == (tmp_path / "whole" / f).read_bytes(), f
    assert not work.exists()  # a finished run leaves nothing to resume
    nothing = _cli("clean", src, "-o", tmp_path / "fresh", "-q", "--resume")
    assert nothing.returncode == 1 and b"nothing to resume" in nothing.stderr


def _square_on(k: int, gate) -> tuple[int, str]:
    # a job of the test below: the pool's first job waits until this process has run the last one
    import threading

    if threading.current_thread() is not threading.main_thread():
        assert gate.wait(30), "this process never took its share of the jobs"
    elif k == 9:
        gate.set()
    return k * k, "pool" if threading.current_thread() is not threading.main_thread() else "here"


def test_jobs_are_shared_between_the_pool_and_this_process():
    """While the pool's worker is busy, this process runs the next jobs itself; every job runs once
    and its result comes back under its own number."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from dedup.jobs import shared

    gate = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        got = dict(shared(_square_on, [(k, gate) for k in range(10)], pool, slots=1))
    assert {k: v for k, (v, _) in got.items()} == {k: k * k for k in range(10)}
    assert {k for k, (_, where) in got.items() if where == "pool"} == {0}
    assert dict(shared(_square_on, [(k, gate) for k in range(3)])) == {k: (k * k, "here") for k in range(3)}  # no pool


def test_jobs_made_as_they_are_handed_out():
    """Jobs from a generator are made one at a time, when a process comes free: never more than
    the pool's slots and this process's one are out at once, every job runs once, and an error
    raised while making a job is raised to the caller (after the jobs handed out before it)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from dedup.jobs import shared

    lock = threading.Lock()
    out = [0]  # jobs made and not yet finished
    most = [0]

    def jobs(n, fail_at=None):
        for k in range(n):
            if k == fail_at:
                raise ValueError(f"record {k} is broken")
            with lock:
                out[0] += 1
                most[0] = max(most[0], out[0])
            yield (k,)

    def work(k):
        time.sleep(0.002 * (k % 3))
        with lock:
            out[0] -= 1
        return k * k

    with ThreadPoolExecutor(1) as pool:
        got = dict(shared(work, jobs(40), pool, slots=1))
        assert got == {k: k * k for k in range(40)} and most[0] <= 2
        seen = []
        with pytest.raises(ValueError, match="record 7 is broken"):
            for k, _ in shared(work, jobs(40, fail_at=7), pool, slots=1):
                seen.append(k)
        assert set(seen) <= set(range(7))
    with pytest.raises(ValueError, match="record 2 is broken"):  # no pool: in order, here
        list(shared(work, jobs(5, fail_at=2)))


def test_workers_start_before_the_input_is_read_only_when_it_is_large(tmp_path):
    """The command line starts its worker processes before it reads (or imports the stages for) an
    input large enough to be shared out, and starts none for a small one: a worker that is still
    starting when a small run ends would hold up its exit."""
    from dedup.jobs import WARM_BYTES, Workers

    small = SEED
    large = tmp_path / "large.txt"
    large.write_text("A line of text.\n" * (WARM_BYTES // 16 + 1), encoding="utf-8")
    for path, started in ((small, False), (large, True)):
        workers = Workers.for_input(path, 2)
        try:
            assert (workers._pool is not None) is started, path
            if started:
                workers._pool.submit(int).result()  # the pool works; the warm-up jobs ran ahead of it
        finally:
            workers.close()
    assert Workers.for_input(large, 1)._pool is None  # one CPU: nothing to start


def test_the_command_line_reads_its_arguments_before_importing_the_stages():
    """``import dedup`` and its command-line module load neither polars nor a stage module, so the
    workers start while this process is still importing; the public names still resolve (and
    ``dedup.normalise`` stays the function once the submodule of that name is imported)."""
    code = ("import sys, dedup.cli; print(sorted(m for m in ('polars', 'numpy', 'dedup.pipeline') if m in sys.modules)); "
            "import dedup.normalise, dedup; print(dedup.normalise.__name__, callable(dedup.segment), dedup.clean.__module__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert proc.stdout.splitlines() == ["[]", "normalise True dedup.pipeline"]


def test_the_command_stops_its_workers_and_exits_with_its_status(tmp_path):
    """``dedup clean`` on two processes ends as soon as its outputs are written: it stops its worker
    and skips the interpreter's teardown, yet every output is complete, nothing is printed but the
    summary (no warning about leaked resources), no process of the run is left behind, and stdout
    written just before the exit arrives (``dedup score --json``)."""
    src = reuters_head(tmp_path, 2000)
    assert src.stat().st_size >= (1 << 20)  # large enough that the workers start
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "dedup", "clean", str(src), "-o", str(out), "--set", "engine.processes=2"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert stdout == b"" and stderr.decode().startswith("2000 records: ") and len(stderr.splitlines()) == 1, stderr
    stats = json.loads((out / "stats.json").read_text())
    assert stats["result"]["kept"] + stats["result"]["dropped"] == 2000
    assert pl.read_ndjson(out / "cleaned.jsonl").height == stats["result"]["kept"]
    assert not (out / ".dedup-work").exists()
    deadline = time.time() + 30
    while time.time() < deadline:  # the run's session: its workers, stopped, are gone in moments
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("a process of the run outlived it")
    score = _cli("score", "--original", "They will speak by phone on Tuesday", "--rewrite", "The two will meet by phone Tuesday", "--json")
    assert score.returncode == 0 and json.loads(score.stdout)["garble_label"] == "garbled"
    bad = _cli("clean", tmp_path / "missing.jsonl", "-o", tmp_path / "x")
    assert bad.returncode == 1 and bad.stderr.startswith(b"dedup error: ")


def test_the_progress_bar_counts_documents_once(tmp_path, capsys):
    # the bar on a terminal counts documents through the per-document stages, batch by batch (with
    # resumed batches counted at once), and names the stage running; it once counted stage calls
    # against a total of five stages, so that a run of several batches went past 100%
    src = reuters_head(tmp_path, 2000)
    config = load_config(None, ["output.checkpoint_documents=700", "engine.processes=1"])
    clean(src, config, progress=True, workdir=tmp_path / "work")
    bar = capsys.readouterr().err
    counts = [(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+) \[", bar)]
    assert counts and {total for _, total in counts} == {2000}
    assert max(n for n, _ in counts) == 2000 and [n for n, _ in counts] == sorted(n for n, _ in counts)
    assert {"normalise", "garble", "output"} <= set(re.findall(r"doc/s, (\w+)\]", bar))
    finished = kill_after_batches(src, tmp_path / "out", ["--set", "output.checkpoint_documents=700", "--set", "engine.processes=1"], 1)
    clean(src, config, progress=True, workdir=tmp_path / "out" / ".dedup-work", resume=True)
    resumed = [int(n) for n in re.findall(r"(\d+)/2000 \[", capsys.readouterr().err)]
    assert finished >= 1 and max(resumed) == 2000  # the batches resumed count too
    assert resumed == sorted(resumed)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` and that still run (not zombies), from /proc."""
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid) and not fields.get("State", "").startswith("Z"):
            out.append(int(status.parent.name))
    return out


def _running(pid: int) -> bool:
    try:
        return not (Path("/proc") / str(pid) / "status").read_text().split("State:\t", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def test_workers_leave_when_their_run_is_killed(tmp_path):
    # kill -9 (or the kernel short of memory) closes nothing: the run's worker processes, each with
    # its imports and word tables, once waited for jobs forever; they now leave within a second
    if not Path("/proc/self/status").exists():
        pytest.skip("reads /proc (Linux)")
    src = reuters_head(tmp_path, 6000)  # over a mebibyte: the workers start before the input is read
    proc = subprocess.Popen([sys.executable, "-m", "dedup", "clean", str(src), "-o", str(tmp_path / "out"), "-q",
                             "--set", "engine.processes=2"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    workers: list[int] = []
    while time.time() < deadline and proc.poll() is None:
        workers = [c for c in _children(proc.pid) if "spawn_main" in (Path("/proc") / str(c) / "cmdline").read_bytes().decode(errors="replace")]
        if workers:
            break
        time.sleep(0.05)
    assert workers, "the run started no worker process"
    time.sleep(0.5)  # the worker is past its start-up
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(map(_running, workers)):
        time.sleep(0.1)
    assert not any(map(_running, workers))
