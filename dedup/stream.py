"""The polars engine out of core: a corpus larger than memory, cleaned within a memory budget.

``dedup clean --memory-budget 2GB`` (or ``engine.memory_budget``) runs the same stage functions as
:func:`dedup.pipeline.run`, in three passes over batches sized to the budget; the outputs are the
same (a test compares them file by file with the in-memory run's).

1. Read the input a batch at a time (:func:`dedup.io.iter_input`) and run the document stage on each
   batch. The batch's documents and passages go to the work folder (they are also the checkpoints
   ``--resume`` continues from), with the batch's cluster inputs: a compact row per document (row,
   id, a 128-bit key of its whitespace-folded text, word count, the keep rule's key), its MinHash
   signature and its LSH band keys. Only the compact rows stay in memory.
2. Cluster from the compact rows: exact groups by key, LSH one band at a time from the band files,
   candidate pairs verified a chunk at a time with their texts and signatures read back from disk,
   components, the copy each cluster keeps.
3. Go over the batches again: cluster columns, the garble scores of near duplicates against their
   kept copies (read back), cleaned text; each output is written a batch at a time and renamed into
   place at the end, the report's examples merged from per-batch samples, ``stats.json`` last.

What stays in memory for the whole run is about 100 bytes per document (the compact rows) plus
the candidate pairs of one band; everything else is bounded by the batch size.

Passes 1 and 3 share their batches between this process and ``engine.processes - 1`` worker
processes (one process per :data:`PROCESS_BUDGET` of the budget at most): whichever is free takes
the next batch, stages (or finishes) it whole and saves it; this process reads the input and writes
the outputs in input order, a batch finished out of turn waiting on disk. Each process holds a batch
at a time, and batches are a ``processes``-th of one process's, so the budget counts them all
together (``stats.json`` reports the peaks of every process, summed).
"""

from __future__ import annotations

import dataclasses
import json
import math
import mmap
import os
import resource
import shutil
import sys
import time
from itertools import count
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from . import schema as S
from .cluster import (
    CLUSTER_COLUMNS, batch_signatures, component_roots, duplicate_links, keep_order, screened, verify_pairs,
    whitespace_key,
)
from .config import PipelineConfig, parse_size
from .errors import ConfigError, DedupError
from .io import INTERNAL, FrameWriter, empty_documents, iter_input, write_atomic, write_text
from .jobs import WARM_BYTES, Workers, cpu_threads, input_bytes, shared
from .minhash import band_keys, bucket_pairs, fold_all, spans
from .pipeline import (
    Checkpoints, Result, add_counts, check_accounting, document_stage, document_stats, duplicate_ids,
    fingerprint, finish_documents, output_files, read_batch, remove_stale, result_counts, save_batch, stage_timer,
)
from .report import markdown_report, merge_samples, report_samples

# The budget counts the memory a run takes for data, above what dedup holds before it reads any
# input (the interpreter, polars, ftfy, the garble scorer's word tables: about 200 MB, measured at the
# start of each run and reported as ``base_rss_bytes``), as ``sort -S`` or DuckDB's memory_limit do.
# The document stage peaks at about this many bytes per character of a batch's text (measured with
# ``python -m benchmarks.stream``), and a batch may take a third of the budget.
BYTES_PER_CHAR = 100
MIN_BUDGET = 64 * 10**6
# The streaming run signs, verifies and links on one thread: every extra thread gets its own malloc
# arena, which keeps what it freed, and at a small budget that alone breaks the bound.
THREADS = 1

KEYS = {  # the compact row kept per document
    S.ROW: pl.Int64, "id_hash": pl.UInt64, "live": pl.Boolean,
    "words": pl.Int32, "chars": pl.Int64, "key_a": pl.UInt64, "key_b": pl.UInt64, "keep_a": pl.Int64, "keep_b": pl.Int64,
    "sig_pos": pl.Int32,
}


@dataclasses.dataclass(frozen=True)
class Budget:
    """How a memory budget is spent: documents and characters of text per batch (the characters
    also bound how many texts are read back at once)."""

    bytes: int
    batch_documents: int
    batch_chars: int

    @property
    def fetch_chars(self) -> int:
        """Characters of text read back at once to verify or link pairs: each is held as a Python
        string, and while a batch of pairs is keyed and folded as polars strings (up to six
        transient copies of a pair's two texts) and folded, so a forty-eighth of the budget."""
        return self.bytes // 48

    @classmethod
    def of(cls, config: PipelineConfig, processes: int = 1) -> Budget:
        """The budget of ``config`` shared by ``processes`` processes, each staging a batch at a
        time: a batch is a ``processes``-th of what one process alone would take."""
        total = parse_size(config.engine.memory_budget, "engine.memory_budget")
        if total < MIN_BUDGET:
            raise ConfigError(
                f"engine.memory_budget = {config.engine.memory_budget!r} is too small to hold a batch; "
                f'give at least "{MIN_BUDGET // 10**6}MB" (it counts memory for data, above the ~200 MB dedup needs itself)')
        return cls(total, config.output.checkpoint_documents, total // 3 // BYTES_PER_CHAR // max(1, processes))


def _peak_rss() -> int:
    """The peak resident set of this process so far: the kernel's high-water mark of its memory
    (``VmHWM``, Linux). Not ``ru_maxrss``: Linux keeps that across ``exec``, so a child started from
    a large parent (a test runner, a notebook) would report the parent's size."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _rss() -> int:
    """The resident set now (Linux); the peak so far elsewhere."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * resource.getpagesize()
    except OSError:
        return _peak_rss()


_STORY = ("Mr Smith met Ms Jones in Paris on {day}, the ministry said in a statement. She said “yes” to the plan, "
          "which sets out how the two countries will share the costs of the new bridge over the river, and "
          "how long the work on both of its banks is expected to take before the first trains can cross it.")
_WARM_UP = [  # an exact copy, a near copy and a caption pair: every code path of a run
    _STORY.format(day="Monday"), _STORY.format(day="Monday"), _STORY.format(day="Tuesday"),
    "Flood water covers a street in Dhaka, Bangladesh, July 2, 2024.\n\nFlood water covered a road in "
    "Dhaka, Bangladesh, on July 2, 2024.\n\nThe rains are expected to last another week.",
]


def _base_rss(config: PipelineConfig) -> int:
    """Memory before any data: clean a tiny corpus first, so that every module, table, thread pool
    and allocator arena a run sets up exists, and measure what stays."""
    import gc
    import tempfile

    with tempfile.TemporaryDirectory(prefix="dedup-warm-up-") as tmp:
        src = Path(tmp) / "warm-up.jsonl"
        src.write_text("".join(json.dumps({"id": f"w{k}", "text": t}) + "\n" for k, t in enumerate(_WARM_UP)), encoding="utf-8")
        warm = dataclasses.replace(config, input=dataclasses.replace(config.input, id_field="id", text_field="text", format="jsonl"),
                                   output=dataclasses.replace(config.output, format="parquet", checkpoint_documents=2))
        _run(src, warm, Path(tmp) / "out", Budget.of(warm), resume=False, team=_Team(base=0))
    gc.collect()
    return _rss()


def _worker_base(config: PipelineConfig) -> tuple[int, int]:
    """In a worker process: its pid and its memory before any data (:func:`_base_rss`), with
    pyarrow on the system allocator, as in the run's own process (the workers are the run's alone)."""
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
    return os.getpid(), _base_rss(config)


def clean_streaming(source: str | Path, config: PipelineConfig, out_dir: str | Path, *, resume: bool = False,
                    progress: bool = False) -> dict[str, Any]:
    """Clean ``source`` into ``out_dir`` within ``config.engine.memory_budget``; return the stats.

    Writes the files :meth:`dedup.pipeline.Result.write` writes, with the same contents. An input
    of :data:`dedup.jobs.WARM_BYTES` or more is shared between this process and
    ``engine.processes - 1`` workers, each staging a batch at a time, with batches a
    ``processes``-th of one process's, so that the budget holds for all of them together.
    """
    import pyarrow as pa

    workers = Workers(_processes(source, config))
    pool = workers.pool(workers.count)
    arrow_pool = pa.default_memory_pool()
    # pyarrow's default allocator (mimalloc) keeps what it freed for reuse, tens of MB after joining
    # the Parquet parts; the system allocator gives it back
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        # each worker measures its own base while this process measures its
        warming = [pool.submit(_worker_base, config) for _ in range(workers.count - 1)] if pool is not None else []
        base = _base_rss(config)
        bases = dict(f.result() for f in warming)
        team = _Team(base, pool, workers.count - 1, bases)
        budget = Budget.of(config, team.processes)
        stats = _run(source, config, Path(out_dir), budget, resume=resume, team=team, progress=progress)
    finally:
        pa.set_memory_pool(arrow_pool)
        workers.close()
    warning = over_budget_warning(stats["engine"], budget.bytes)  # not the warm-up's, which has no base
    if warning:
        print(warning, file=sys.stderr)
    return stats


def _processes(source, config: PipelineConfig) -> int:
    """How many processes a streaming run uses: ``engine.processes`` (0: every usable CPU), but one
    for an input under :data:`dedup.jobs.WARM_BYTES` (a worker's start-up would cost more than it
    saves) and at most one per :data:`PROCESS_BUDGET` of the budget."""
    if input_bytes(source) < WARM_BYTES:
        return 1
    total = parse_size(config.engine.memory_budget, "engine.memory_budget")
    return max(1, min(cpu_threads(config.engine.processes), total // PROCESS_BUDGET))


# Each process of a streaming run holds, beside its batches, its own word caches and allocator
# arenas: a worker raised the data peak of a 2-process run 10-25 MB above the 1-process run's
# (64 MB budget, 200 MB corpus, garble off: 72 against 55 MB; 256 MB budget, 60 MB corpus, garble
# on: 103 against 78 MB), which a 64 MB budget cannot spare. So a process needs this much budget.
PROCESS_BUDGET = 128 * 10**6


class _Team:
    """The processes of a streaming run: this one and its workers, with the memory each held before
    any data (``bases``, by pid) and the peak each has reported since (a job returns its process's)."""

    def __init__(self, base: int, pool=None, slots: int = 0, bases: dict[int, int] | None = None):
        self.pool = pool
        self.slots = slots if pool is not None else 0
        self.processes = 1 + self.slots
        self.base = base
        self.bases = bases or {}
        self.peaks: dict[int, int] = {}

    def note(self, pid: int, peak: int) -> None:
        if pid != os.getpid():
            self.peaks[pid] = max(self.peaks.get(pid, 0), peak)

    def worker_base(self, pid: int) -> int:
        # a worker that took no warm-up job (two went to one process) is measured like the others
        return self.bases.get(pid, min(self.bases.values(), default=0))

    def base_rss(self) -> int:
        """What every process held before any data."""
        return self.base + sum(self.worker_base(pid) for pid in self.peaks)

    def peak_rss(self) -> int:
        """The peaks of every process so far, summed: a bound on the peak of them all at once."""
        return _peak_rss() + sum(self.peaks.values())

    def data_peak(self) -> int:
        return self.peak_rss() - self.base_rss()


def _bar(progress: bool, desc: str, total: int | None = None):
    """A progress bar on stderr, counting batches (without ``progress``, a stand-in that does
    nothing: a tqdm bar, even disabled, makes a multiprocessing lock, which a worker process, stopped
    at the end of the run, would leave behind in the resource tracker, which warns of it)."""
    if not progress:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=" batches", file=sys.stderr, leave=False)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _run(source, config: PipelineConfig, out: Path, budget: Budget, *, resume: bool, team: "_Team",
         progress: bool = False) -> dict[str, Any]:
    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    if str(source) == "-" and resume:
        raise DedupError("--resume needs an input file or folder (not stdin)")
    work = Checkpoints(out / ".dedup-work", fingerprint(source, config) if str(source) != "-" else "stdin", resume)
    (out / "stats.json").unlink(missing_ok=True)  # the manifest goes first and comes back last
    remove_stale(out)
    # batches of whole documents never change a result, only how much is held at once
    run_config = dataclasses.replace(config, pairs=dataclasses.replace(
        config.pairs, batch_chars=min(config.pairs.batch_chars, budget.batch_chars)))
    stats: dict[str, Any] = {}
    timed = stage_timer(stats)
    spill = _Spill(work)

    # pass 1: the document stage, batch by batch, each batch staged and saved by whichever process
    # is free (this one reads the batches)
    fmt, batches = iter_input(source, config.input, batch_documents=budget.batch_documents, batch_chars=budget.batch_chars)
    batches = _at_least_one(batches, lambda: empty_documents(source, config.input))
    columns: dict[str, None] = {config.input.id_field: None, config.input.text_field: None}
    over_budget: list[str] = []
    read_seconds = [0.0]
    bar = _bar(progress, "dedup: documents")

    def stage_jobs():
        for k in count():
            t0 = time.perf_counter()
            frame = next(batches, None)
            read_seconds[0] += time.perf_counter() - t0
            if frame is None:
                return
            bar.update(1)
            for c in frame.columns:
                if c not in INTERNAL:
                    columns.setdefault(c)
            if frame.height == 1 and len(frame[S.TEXT][0] or "") > budget.batch_chars:
                over_budget.append(frame[S.DOC_ID][0])
                print(f"dedup: warning: record {frame[S.DOC_ID][0]!r} (line {frame[S.SOURCE_LINE][0]}) holds "
                      f"{len(frame[S.TEXT][0]) / 1e6:.1f} million characters, more than a batch of this memory budget; "
                      f"it is cleaned alone and may take more memory than the budget", file=sys.stderr)
            spill.add(k, int(frame[S.ROW][0]) if frame.height else 0)
            if work.done(k):
                work.reused += 1
            else:
                yield frame, run_config, config, work.folder, k
            del frame

    signature_seconds = 0.0
    worst: dict[str, Any] = {"rise_bytes": 0}
    for _, got in shared(_stage_batch, stage_jobs(), team.pool, team.slots):
        for name, seconds in got["seconds"].items():
            timed.add(name, seconds)
        signature_seconds += got["signature_seconds"]
        if got["rise"]["rise_bytes"] > worst["rise_bytes"]:  # the batch that raised a process's peak most
            worst = got["rise"]
        team.note(got["pid"], got["peak_rss_bytes"])
    bar.close()
    counts: dict = {}
    for k in range(spill.batches):  # in input order, as one run over the whole corpus counts
        counts = add_counts(counts, json.loads(work.path("stats", k, "json").read_text(encoding="utf-8")))
    peaks = {"documents": team.data_peak()}
    walls = {"documents": time.perf_counter() - t_start}
    keys = spill.keys()
    stats["input"] = {"records": keys.height, "duplicate_ids": _duplicate_ids(keys, spill), "resumed_batches": work.reused}
    for name, block in counts.items():
        stats.setdefault(name, {}).update(block)

    # pass 2: clusters
    members, cstats = timed("cluster", _cluster, keys, spill, config, budget)
    peaks["cluster"] = team.data_peak()
    walls["cluster"] = time.perf_counter() - t_start - sum(walls.values())
    stats["cluster"].update(cstats)
    if config.cluster.enabled and keys.height:  # the in-memory run's keys, where it has them
        stats["cluster"]["signature_seconds"] = round(signature_seconds, 4)

    # pass 3: cluster verdicts, garble scores of near duplicates, outputs; each batch finished by
    # whichever process is free, and written here in input order
    writers = {name: FrameWriter(path, file_fmt) for name, (path, file_fmt) in output_files(out, config.output.format, fmt).items()}
    samples: dict[str, pl.DataFrame] = {}
    result: dict[str, Any] = {}
    garbled_copies = 0
    n_ex = config.output.report_examples

    def finish_jobs():
        ends = [*spill.starts[1:], None]
        for k in range(spill.batches):
            lo, hi = spill.starts[k], ends[k]
            mine = members.filter(pl.col(S.ROW) >= lo) if hi is None else members.filter(pl.col(S.ROW).is_between(lo, hi - 1))
            yield work.folder, k, mine, spill, config, columns, fmt, os.getpid()

    ready: dict[int, dict] = {}  # finished batches waiting for an earlier one, their frames on disk
    written = 0
    try:
        bar = _bar(progress, "dedup: outputs", spill.batches)
        for k, got in shared(_finish_batch, finish_jobs(), team.pool, team.slots):
            bar.update(1)
            team.note(got["pid"], got["peak_rss_bytes"])
            for name, seconds in got["seconds"].items():
                timed.add(name, seconds)
            if k != written and got["frames"] is not None:  # made here, out of turn: held on disk, not in memory
                got["files"], got["frames"] = _spill_frames(work.folder, k, got["frames"]), None
            ready[k] = got
            while written in ready:  # every batch up to here is finished: write them in order
                done = ready.pop(written)
                timed("output", _write_frames, writers, done)
                garbled_copies += done["garbled_copies"]
                samples = merge_samples([samples, done["samples"]], n_ex) if samples else done["samples"]
                result = add_counts(result, done["counts"])
                written += 1
        bar.close()
        peaks["verdicts"] = team.data_peak()
        for w in writers.values():
            w.close()
        peaks["outputs"] = team.data_peak()
        walls["outputs"] = time.perf_counter() - t_start - sum(walls.values())
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    if config.garble.scores_copies:
        stats["garble"]["near_duplicates_garbled"] = garbled_copies
    stats["result"] = {"kept": result.get("kept", 0), "dropped": result.get("dropped", 0),
                       "dropped_by_reason": result.get("dropped_by_reason", {})}
    check_accounting(stats)
    stats["input"].update(source=str(source), format=fmt)
    stats["input"]["seconds"] = round(read_seconds[0], 4)
    stats["engine"] = {
        "name": "polars", "mode": "streaming", "memory_budget": config.engine.memory_budget, "batches": spill.batches,
        "processes": team.processes, "batch_documents": budget.batch_documents, "batch_chars": budget.batch_chars,
        "base_rss_bytes": team.base_rss(), "peak_rss_bytes": team.peak_rss(), "data_peak_bytes": team.data_peak(),
        "data_peak_bytes_by_pass": peaks, "seconds_by_pass": {k: round(v, 4) for k, v in walls.items()},
        "over_budget_records": over_budget, "batch_raising_the_peak_most": worst,
    }
    stats["total_seconds"] = round(time.perf_counter() - t_start, 4)
    stats["config"] = config.to_dict()
    merged = samples
    near = merged["near"] if merged else pl.DataFrame(schema={S.KEPT_ROW: pl.Int64})
    kept_texts = spill.frame(near[S.KEPT_ROW].unique().sort().to_numpy(), [S.TEXT_NORM])
    report = markdown_report(stats, config, merged, dict(kept_texts.select(S.ROW, S.TEXT_NORM).iter_rows()))
    write_text(out / "report.md", report)
    write_text(out / "stats.json", json.dumps(stats, indent=2, sort_keys=True) + "\n")  # last: the manifest
    return stats


def over_budget_warning(engine: dict[str, Any], budget: int) -> str | None:
    """The line a streamed run prints when its measured memory for data (``engine``: its
    ``stats.json`` block) rose above the ``budget`` (bytes), naming the pass that crossed it; None
    when it stayed within. The peaks by pass add up from the start, so the first above is the one."""
    peak = engine["data_peak_bytes"]
    if peak <= budget:
        return None
    by_pass = engine["data_peak_bytes_by_pass"]  # read at each pass's end: the last may miss the run's last writes
    crossed = next((name for name, value in by_pass.items() if value > budget), list(by_pass)[-1])
    return (f"dedup: warning: memory for data peaked at {peak / 1e6:.0f} MB, above the {engine['memory_budget']} budget, "
            f"in the {crossed} pass; give a larger --memory-budget (README: what the budget does not bound)")


def _stage_batch(frame: pl.DataFrame, run_config: PipelineConfig, config: PipelineConfig, folder: Path, k: int) -> dict[str, Any]:
    """Pass 1 for batch ``k``, in any process: the document stage, its counts and the cluster
    inputs, all saved to the work ``folder`` (the batch marked done last). Returns what the run
    adds up: seconds per stage, the process's pid and peak memory, how much the batch raised it."""
    stats: dict[str, Any] = {}
    before = _peak_rss()
    docs, passages = document_stage(frame, run_config, timed=stage_timer(stats))
    rise = {"batch": k, "rise_bytes": _peak_rss() - before, "documents": frame.height,
            "chars": int(frame[S.TEXT].str.len_chars().sum() or 0)}
    block = document_stats(docs, passages, config)
    t_sig = time.perf_counter()
    keys, sig, bands = _cluster_inputs(docs, config)
    signature_seconds = time.perf_counter() - t_sig
    save_batch(folder, k, docs, passages, {
        f"keys-{k:06d}.parquet": lambda tmp: keys.write_parquet(tmp),
        f"sig-{k:06d}.npy": lambda tmp: _save_npy(tmp, sig),
        f"bands-{k:06d}.npy": lambda tmp: _save_npy(tmp, bands),
        **{f"{field}-{k:06d}.bin": (lambda tmp, col=docs[field]: _save_ragged(tmp, col)) for field in STORED},
        f"stats-{k:06d}.json": lambda tmp: tmp.write_text(json.dumps(block), encoding="utf-8"),
    })
    return {"seconds": {name: b["seconds"] for name, b in stats.items()}, "signature_seconds": signature_seconds,
            "rise": rise, "pid": os.getpid(), "peak_rss_bytes": _peak_rss()}


def _finish_batch(folder: Path, k: int, members: pl.DataFrame, spill: "_Spill", config: PipelineConfig,
                  columns: dict[str, None], fmt: str, writer_pid: int) -> dict[str, Any]:
    """Pass 3 for batch ``k``, in any process: its cluster columns (``members``: those of its
    rows), the garble scores of its near duplicates against their kept copies (read back), its
    output frames, report samples and counts. A worker leaves the frames in the work ``folder``
    (``files``); the process that writes the outputs (``writer_pid``) returns them (``frames``)."""
    docs, passages = read_batch(folder, k)
    docs = _with_clusters(docs, members)
    kept = None
    if config.garble.scores_copies:
        near_kept = docs.filter(pl.col(S.DUP_KIND) == "near")[S.KEPT_ROW].unique().sort()
        kept = spill.frame(near_kept.to_numpy(), [S.TEXT, S.TEXT_NORM, S.ANCHOR_NORM, S.ANCHOR_RAW])
    stats: dict[str, Any] = {}
    timed = stage_timer(stats)
    docs, passages = finish_documents(docs, passages, config, timed, kept)
    batch = Result(docs.with_columns(_missing(docs, columns, config)), passages, {}, config, fmt, list(columns))
    frames = timed("output", batch.output_frames)
    got = {
        "garbled_copies": int((docs[S.G_LABEL] == "garbled").sum()) if config.garble.scores_copies else 0,
        "samples": report_samples(docs, passages, config.output.report_examples), "counts": result_counts(docs),
        "frames": frames, "files": None,
    }
    if os.getpid() != writer_pid:  # a worker: the frames go through the disk, not the pipe
        got["files"], got["frames"] = timed("output", _spill_frames, folder, k, frames), None
    got.update(seconds={name: b["seconds"] for name, b in stats.items()}, pid=os.getpid(), peak_rss_bytes=_peak_rss())
    return got


def _spill_frames(folder: Path, k: int, frames: dict[str, pl.DataFrame]) -> dict[str, Path]:
    """Output frames of batch ``k`` saved to the work ``folder`` until their turn to be written
    (Arrow IPC, uncompressed: every type kept as it is, and quick to read back)."""
    paths = {name: folder / f"out-{k:06d}-{name}.arrow" for name in frames}
    for name, frame in frames.items():
        write_atomic(paths[name], lambda tmp, frame=frame: frame.write_ipc(tmp, compression="uncompressed"))
    return paths


def _write_frames(writers: dict[str, FrameWriter], got: dict[str, Any]) -> None:
    """Append a finished batch's output frames to the outputs: those it holds, or those it left in
    the work folder (:func:`_spill_frames`; each file removed once written)."""
    if got["frames"] is not None:
        for name, frame in got["frames"].items():
            writers[name].write(frame)
        return
    for name, path in got["files"].items():
        writers[name].write(pl.read_ipc(path))
        path.unlink()


def _at_least_one(batches, empty):
    """The batches, or one empty batch for an input without records (so that every output, with
    its columns, is still written, as the in-memory run writes it)."""
    any_batch = False
    for batch in batches:
        any_batch = True
        yield batch
    if not any_batch:
        yield empty()


def _missing(docs: pl.DataFrame, columns: dict[str, None], config: PipelineConfig) -> list[pl.Expr]:
    """Input fields some other batch has and this one lacks: null here, as in a whole-corpus frame."""
    own = (config.input.id_field, config.input.text_field)
    return [pl.lit(None).alias(c) for c in columns if c not in docs.columns and c not in own]


_STORED_TYPES = {S.TEXT: pl.String, S.TEXT_NORM: pl.String, S.DOC_ID: pl.String, S.SOURCE_LINE: pl.Int64,
                 S.ANCHOR_NORM: pl.List(pl.Int64), S.ANCHOR_RAW: pl.List(pl.Int64)}
STORED = (S.TEXT, S.TEXT_NORM, S.ANCHOR_NORM, S.ANCHOR_RAW, S.DOC_ID, S.SOURCE_LINE)  # read back by row


def _save_ragged(tmp: Path, col: pl.Series) -> None:
    """One column of a batch, a value per document, as bytes back to back (UTF-8 for text, int64 for
    numbers and lists of them), then the end offset of each value (int64) and how many there are:
    any value can be read back with one seek (:meth:`_Spill.values`). Null is stored as empty. The
    bytes are Arrow's own buffers (a large string or large list array), written as they are."""
    import pyarrow as pa

    if col.dtype == pl.String:
        arr = col.fill_null("").to_arrow().cast(pa.large_string())
        width = 1
    elif isinstance(col.dtype, pl.List):
        arr = col.fill_null([]).to_arrow().cast(pa.large_list(pa.int64()))
        width = 8
    else:  # a number per document: a list of one
        arr = col.cast(pl.Int64).to_arrow().cast(pa.int64())
        arr = pa.LargeListArray.from_arrays(pa.array(np.arange(len(arr) + 1, dtype=np.int64)), arr)
        width = 8
    arr = pa.concat_arrays([arr]) if arr.offset else arr  # offsets from 0
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[: len(arr) + 1]
    if isinstance(arr.type, pa.LargeListType):
        values = arr.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0])).cast(pa.int64())
        data = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.int64).tobytes()
    else:
        buf = arr.buffers()[2]
        data = buf.to_pybytes()[int(offsets[0]) : int(offsets[-1])] if buf is not None else b""
    ends = (offsets[1:] - offsets[0]) * width
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.write(ends.astype(np.int64).tobytes())
        fh.write(np.int64(len(ends)).tobytes())


def _save_npy(tmp: Path, array: np.ndarray) -> None:
    with open(tmp, "wb") as fh:
        np.save(fh, array)


def exact_keys(col: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes of the whitespace-folded text: equal 128-bit keys are taken as
    identical texts (two different texts share one with probability about 2^-128 per pair)."""
    key = whitespace_key(col)
    return key.hash(seed=0).to_numpy(), key.hash(seed=1).to_numpy()


def _cluster_inputs(docs: pl.DataFrame, config: PipelineConfig) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """A batch's compact rows, and the MinHash signatures and band keys (bands x documents) of those
    long enough for LSH (``sig_pos`` points into them; -1 for the others)."""
    cc = config.cluster
    col = docs[S.TEXT_NORM].fill_null("")
    words, live, eligible, sig = batch_signatures(docs, cc, THREADS)
    bands = band_keys(sig, cc.bands, cc.rows).T  # (bands, n), each band contiguous
    pos = np.full(docs.height, -1, dtype=np.int64)
    pos[eligible] = np.arange(len(eligible))
    key_a, key_b = exact_keys(col)
    chars = col.str.len_chars().to_numpy()
    order = keep_order(docs, cc, config.input.date_field)
    keys = pl.DataFrame({
        S.ROW: docs[S.ROW],
        "id_hash": docs[S.DOC_ID].hash(seed=0), "live": live, "words": words, "chars": chars,
        "key_a": key_a, "key_b": key_b, "keep_a": [o[0] for o in order], "keep_b": [o[1] for o in order], "sig_pos": pos,
    }, schema=KEYS)
    return keys, sig, bands


class _Spill:
    """The batches in the work folder, read back: the compact rows, signatures and band keys by
    row, and any columns of a few documents (only the row groups that hold them are read)."""

    def __init__(self, work: Checkpoints) -> None:
        self.work = work
        self.batches = 0
        self.starts: list[int] = []
        self._headers: dict[Path, tuple] = {}  # each .npy file's shape, dtype, data offset and order

    def __getstate__(self) -> dict:
        # a pass-3 job sent to a worker carries the spill: not this process's header cache (218 KB
        # for the 4,494 arrays of 1M documents at 512 MB), which pass 3 does not read
        return {**self.__dict__, "_headers": {}}

    def add(self, k: int, first_row: int) -> None:
        assert k == self.batches
        self.batches += 1
        self.starts.append(first_row)

    def keys(self) -> pl.DataFrame:
        """The compact rows of every batch as one frame, filled in place a batch at a time."""
        if not self.batches:
            return pl.DataFrame(schema=KEYS)
        last = pl.read_parquet(self.work.path("keys", self.batches - 1))
        n = self.starts[-1] + last.height
        columns = {c: np.empty(n, dtype=last[c].to_numpy().dtype) for c in KEYS}
        for k in range(self.batches):
            part = last if k == self.batches - 1 else pl.read_parquet(self.work.path("keys", k))
            lo = self.starts[k]
            for c in KEYS:
                columns[c][lo : lo + part.height] = part[c].to_numpy()
        return pl.DataFrame(columns, schema=KEYS)

    def batch_of(self, rows: np.ndarray) -> np.ndarray:
        return np.searchsorted(np.asarray(self.starts), rows, side="right") - 1

    def rows_by_batch(self, rows: np.ndarray):
        """``(k, rows of batch k)`` for sorted ``rows``."""
        if not len(rows):
            return
        where = self.batch_of(rows)
        for k in np.unique(where).tolist():
            yield k, rows[where == k]

    def texts(self, rows: np.ndarray) -> dict[int, str]:
        """The normalised texts of some documents (sorted ``rows``)."""
        return self.values(S.TEXT_NORM, rows)

    def frame(self, rows: np.ndarray, columns: list[str]) -> pl.DataFrame:
        """``_row`` and stored ``columns`` of some documents (sorted ``rows``)."""
        values = {c: self.values(c, rows) for c in columns}
        return pl.DataFrame({S.ROW: rows.astype(np.int64), **{c: [v[r] for r in rows.tolist()] for c, v in values.items()}},
                            schema={S.ROW: pl.Int64, **{c: _STORED_TYPES[c] for c in columns}})

    def values(self, field: str, rows: np.ndarray) -> dict:
        """One stored column's values for some documents (sorted ``rows``), by row: one seek each."""
        kind = _STORED_TYPES[field]
        out: dict = {}
        for k, sel in self.rows_by_batch(rows):
            with open(self.work.path(field, k, "bin"), "rb") as fh:
                fh.seek(-8, 2)
                n = int(np.frombuffer(fh.read(8), dtype=np.int64)[0])
                fh.seek(-8 - 8 * n, 2)
                ends = np.frombuffer(fh.read(8 * n), dtype=np.int64)
                for r in sel.tolist():
                    i = r - self.starts[k]
                    start = int(ends[i - 1]) if i else 0
                    fh.seek(start)
                    raw = fh.read(int(ends[i]) - start)
                    if kind == pl.String:
                        out[r] = raw.decode("utf-8")
                    elif kind == pl.Int64:
                        out[r] = int(np.frombuffer(raw, dtype=np.int64)[0])
                    else:
                        out[r] = np.frombuffer(raw, dtype=np.int64).tolist()
        return out

    def array(self, kind: str, k: int) -> np.ndarray:
        """Batch ``k``'s saved array of this kind, memory-mapped (a read touches only its pages).

        Clustering asks for each batch's arrays once per band and once per chunk of candidates (31,638
        times for the 100k-document corpus at 128 MB); ``np.load(mmap_mode="r")`` parsed the file's
        header each time (with ``ast``) and resolved its path: 7.5 of the pass's 19 s under cProfile.
        The header is read once per file."""
        path = self.work.path(kind, k, "npy")
        header = self._headers.get(path)
        if header is None:
            with open(path, "rb") as fh:
                version = np.lib.format.read_magic(fh)
                shape, fortran, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                         else np.lib.format.read_array_header_2_0)(fh)
                header = self._headers[path] = (shape, dtype, fh.tell(), "F" if fortran else "C")
        shape, dtype, offset, order = header
        n = math.prod(shape)
        if not n:
            return np.empty(shape, dtype=dtype)
        with open(path, "rb") as fh:
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        return np.frombuffer(mapped, dtype=dtype, count=n, offset=offset).reshape(shape, order=order)


def _cluster(keys: pl.DataFrame, spill: _Spill, config: PipelineConfig, budget: Budget) -> tuple[pl.DataFrame, dict]:
    """:func:`dedup.cluster.cluster_documents` over the compact rows: the same groups, candidates,
    verification and keep rule, with texts and signatures read back from the work folder."""
    cc = config.cluster
    stats: dict[str, Any] = {"candidates": 0, "verified": 0}
    timings: dict[str, float] = {}
    edges: list[np.ndarray] = []
    timings["exact_seconds"] = 0.0
    if cc.enabled and keys.height:
        t0 = time.perf_counter()
        rows, head = _exact_heads(keys)
        edges.append(np.column_stack([head[head != rows], rows[head != rows]]))
        is_head = np.zeros(keys.height, dtype=bool)
        is_head[rows[head == rows] - int(keys[S.ROW][0])] = True
        del rows, head
        timings["exact_seconds"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        heads = keys.filter(pl.Series(is_head) & (pl.col("words") >= cc.min_words)).select("sig_pos", S.ROW, "chars")
        pos, head_rows, head_chars = (heads[c].to_numpy() for c in heads.columns)
        batch = spill.batch_of(head_rows)
        del heads, is_head
        runs = [(k, np.flatnonzero(batch == k)) for k in np.unique(batch).tolist()]

        def key_of_band(b: int) -> np.ndarray:
            out = np.empty(len(head_rows), dtype=np.uint64)
            for k, idx in runs:
                out[idx] = spill.array("bands", k)[b, pos[idx]]
            return out

        cands = bucket_pairs(key_of_band, len(head_rows), cc.bands, None, cc.max_bucket)
        timings["lsh_seconds"] = time.perf_counter() - t0
        stats["candidates"] = int(len(cands))
        t0 = time.perf_counter()
        verified = []
        cost = head_chars[cands[:, 0]] + head_chars[cands[:, 1]] if len(cands) else np.empty(0, np.int64)
        for lo, hi in spans(cost, budget.fetch_chars):
            part = cands[lo:hi]
            sig = _signatures(spill, batch, pos, np.unique(part))
            keep, estimates = screened(np.stack([sig[a] for a in part[:, 0]]), np.stack([sig[b] for b in part[:, 1]]), cc)
            part = part[keep]  # texts are read and folded for these pairs only
            if not len(part):
                continue
            texts = _folded(spill, head_rows[np.unique(part)])
            rows = head_rows[part]
            ok = verify_pairs([texts[i] for i in rows[:, 0].tolist()], [texts[j] for j in rows[:, 1].tolist()], estimates, cc, THREADS)
            verified.extend(map(tuple, rows[ok].tolist()))
        stats["verified"] = len(verified)
        edges.append(np.asarray(verified, dtype=np.int64).reshape(-1, 2))
        timings["verify_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    members = _link(keys, np.vstack(edges) if edges else np.empty((0, 2), np.int64), spill, budget)
    timings["components_seconds"] = time.perf_counter() - t0
    kinds = members[S.DUP_KIND].value_counts()
    by_kind = {k: int(v) for k, v in kinds.iter_rows()}
    stats.update(clusters=by_kind.get(None, 0), exact_duplicates=by_kind.get("exact", 0), near_duplicates=by_kind.get("near", 0))
    stats.update({k: round(v, 4) for k, v in timings.items()})
    return members, stats


def _exact_heads(keys: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The live rows and, for each, the first row with the same 128-bit text key (itself when it
    is the first): sorted by key, then row, so each run of equal keys starts with its head."""
    live = keys["live"].to_numpy()
    rows = keys[S.ROW].to_numpy()[live]
    a, b = keys["key_a"].to_numpy()[live], keys["key_b"].to_numpy()[live]
    order = np.lexsort((rows, b, a))
    a, b = a[order], b[order]
    start = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
    del a, b
    head = np.empty_like(rows)
    head[order] = rows[order][np.flatnonzero(start)][np.cumsum(start) - 1]
    return rows, head


def _signatures(spill: _Spill, batch: np.ndarray, pos: np.ndarray, heads: np.ndarray) -> dict[int, np.ndarray]:
    """Signatures of some LSH heads (sorted indices into the heads), by head index."""
    out: dict[int, np.ndarray] = {}
    for k in np.unique(batch[heads]).tolist():
        sel = heads[batch[heads] == k]
        out.update(zip(sel.tolist(), np.asarray(spill.array("sig", k)[pos[sel]])))
    return out


def _folded(spill: _Spill, rows: np.ndarray) -> dict[int, str]:
    texts = spill.texts(np.unique(rows))
    return dict(zip(texts, fold_all(list(texts.values()), THREADS)))


def _link(keys: pl.DataFrame, edges: np.ndarray, spill: _Spill, budget: Budget) -> pl.DataFrame:
    """Cluster columns for every member of a cluster: components of ``edges`` (rows), the copy kept
    by the keep rule (smallest ``keep_a, keep_b, row``), each other member's link to it.

    In numpy, over the members alone: the compact rows are consecutive rows, so a member's are
    gathered by position. In a 1M-document run, joining the members' frame to the million compact
    rows in polars, then sorting and grouping it, raised the peak by 156 MB; the Python union-find
    before it (a dict and lists over the members) by 58 MB more."""
    schema = {S.ROW: pl.Int64, **CLUSTER_COLUMNS}
    if not len(edges):
        return pl.DataFrame(schema=schema)
    nodes, root = component_roots(edges)  # sorted rows, each with its component's smallest row
    row0 = int(keys[S.ROW][0])
    at = nodes - row0
    keep_a, keep_b = keys["keep_a"].to_numpy()[at], keys["keep_b"].to_numpy()[at]
    # the kept copy of a component comes first in its run of this order
    order = np.lexsort((nodes, keep_b, keep_a, root))
    run_starts = np.r_[True, root[order][1:] != root[order][:-1]]
    kept = np.empty_like(nodes)
    kept[order] = nodes[order[run_starts]][np.cumsum(run_starts) - 1]
    copy = nodes != kept
    rows, kept_rows = nodes[copy], kept[copy]  # in row order
    kept_ids = spill.values(S.DOC_ID, np.unique(kept_rows))
    chars = keys["chars"].to_numpy()
    kinds: list[str] = []
    sims: list[float] = []
    for lo, hi in spans(chars[rows - row0] + chars[kept_rows - row0], budget.fetch_chars):
        part, part_kept = rows[lo:hi].tolist(), kept_rows[lo:hi].tolist()
        texts = spill.texts(np.unique(np.r_[rows[lo:hi], kept_rows[lo:hi]]))
        k, sim = duplicate_links([texts[i] or "" for i in part], [texts[j] or "" for j in part_kept], THREADS)
        kinds += k
        sims += [float(x) for x in sim]
    links = pl.DataFrame({S.ROW: rows, S.DUPLICATE_OF: [kept_ids[j] for j in kept_rows.tolist()],
                          S.DUP_SIMILARITY: sims, S.DUP_KIND: kinds})
    members = pl.DataFrame({S.ROW: nodes, S.CLUSTER_ID: root, S.KEPT_ROW: kept}).join(links, on=S.ROW, how="left")
    return members.select(*schema).cast(schema)


def _duplicate_ids(keys: pl.DataFrame, spill: _Spill) -> dict[str, Any]:
    """:func:`dedup.pipeline.duplicate_ids` from the ids' hashes: only the records whose id hash
    repeats have their ids read back (a collision of two different ids is then no group). The
    repeats are found by sorting the hashes: over a million of them, polars' ``is_duplicated`` raised
    the process's peak by 110 MB, which its allocator then kept; this, by 25 MB (``np.unique`` with
    its inverse and counts, by 64 MB)."""
    h = keys["id_hash"].to_numpy()
    order = np.argsort(h)
    same = np.flatnonzero(h[order][1:] == h[order][:-1])  # sorted neighbours: order[same] and order[same + 1]
    repeated = np.zeros(len(h), dtype=bool)
    repeated[order[same]] = repeated[order[same + 1]] = True
    rows = keys[S.ROW].to_numpy()[repeated]
    return duplicate_ids(spill.frame(rows, [S.DOC_ID, S.SOURCE_LINE]))


def _with_clusters(docs: pl.DataFrame, members: pl.DataFrame) -> pl.DataFrame:
    lo, hi = docs[S.ROW].min(), docs[S.ROW].max()
    mine = members.filter(pl.col(S.ROW).is_between(lo, hi)) if docs.height else members.head(0)
    return docs.join(mine, on=S.ROW, how="left").select(*docs.columns, *CLUSTER_COLUMNS)


def clean_cli(args_input: str, config: PipelineConfig, out: Path, *, progress: bool, resume: bool) -> dict[str, Any]:
    """What ``dedup clean`` runs with a memory budget: the streaming run, then the work folder removed."""
    stats = clean_streaming(args_input, config, out, resume=resume, progress=progress)
    shutil.rmtree(out / ".dedup-work", ignore_errors=True)
    return stats



