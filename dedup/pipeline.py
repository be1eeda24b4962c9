"""The only place where stages are chained. Rows leave only here, each with a ``drop_reason``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from . import schema as S
from .cluster import cluster_documents, cluster_inputs
from .garble_stage import score_documents, score_passages
from .config import PipelineConfig
from .errors import DedupError
from .io import INTERNAL, MALFORMED, read_input, write_atomic, write_frame, write_text
from .jobs import Workers, job_size
from .normalise import normalise
from .pairs import find_pairs
from .segment import segment

ANNOTATION_COLUMNS = [
    S.DOC_ID, S.P_INDEX, S.P_START, S.P_END, S.P_NORM_START, S.P_NORM_END, S.P_KIND, S.P_WORDS, S.P_TEXT,
    S.P_PAIR_KIND, S.P_ROLE, S.P_PARTNER, S.P_SIMILARITY, S.P_JACCARD, S.CLUSTER_ID, S.DUPLICATE_OF,
    S.G_SCORE, S.G_LABEL, S.G_MODE, S.G_REASONS, S.P_ACTION, S.DROP_REASON, S.DECODE_ERROR,
]


@dataclass
class Result:
    """What :func:`clean` returns: every input record, every passage, and the run's stats."""

    documents: pl.DataFrame  # one row per input record, with drop_reason (null = kept)
    passages: pl.DataFrame  # the per-passage annotations
    stats: dict[str, Any]
    config: PipelineConfig
    input_format: str = "jsonl"
    input_columns: list[str] = field(default_factory=list)

    @property
    def kept(self) -> pl.DataFrame:
        return self.documents.filter(pl.col(S.DROP_REASON).is_null())

    @property
    def dropped(self) -> pl.DataFrame:
        return self.documents.filter(pl.col(S.DROP_REASON).is_not_null())

    def annotations(self) -> pl.DataFrame:
        return self.passages.select(ANNOTATION_COLUMNS)

    def cleaned_records(self) -> pl.DataFrame:
        """The kept records as the user gave them, with the text field holding the cleaned text."""
        return _user_records(self.kept, self.config, self.input_columns, S.TEXT_CLEAN)

    def dropped_records(self) -> pl.DataFrame:
        """Every dropped record as given, with why it was dropped and, for a copy, what it copies."""
        frame = _user_records(self.dropped, self.config, self.input_columns, S.TEXT)
        extra = self.dropped.select(
            pl.col(S.DROP_REASON), pl.col(S.DUPLICATE_OF), pl.col(S.DUP_SIMILARITY), pl.col(S.G_SCORE), pl.col(S.G_LABEL),
            pl.col(S.G_REASONS), pl.col(S.SOURCE_LINE).alias("source_line"),
            pl.col(MALFORMED).alias("error"),
        )
        return pl.concat([frame, extra], how="horizontal")

    def output_frames(self) -> dict[str, pl.DataFrame]:
        """The data files' contents, by the names :func:`output_files` gives them paths under."""
        ann = self.annotations()
        return {
            "cleaned": self.cleaned_records(),
            "dropped": self.dropped_records(),
            "dropped_passages": ann.filter(pl.col(S.P_ACTION) == "drop"),
            "annotations": ann,
        }

    def report(self) -> str:
        from .report import markdown_report, report_samples

        samples = report_samples(self.documents, self.passages, self.config.output.report_examples)
        texts = dict(self.documents.select(S.ROW, S.TEXT_NORM).filter(pl.col(S.ROW).is_in(samples["near"][S.KEPT_ROW].implode())).iter_rows())
        return markdown_report(self.stats, self.config, samples, texts)

    def write(self, out_dir: str | Path, fmt: str | None = None) -> dict[str, Path]:
        """Write the cleaned corpus, ``dropped.*``, ``dropped_passages.*``, annotations, report and stats.

        Each file is written to a temporary name and renamed into place when complete. ``stats.json``
        is the run's manifest: an earlier run's copy is removed first and the new one written last, so
        a folder with ``stats.json`` holds one finished run, whatever killed a run before.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "stats.json").unlink(missing_ok=True)
        remove_stale(out)
        outputs = output_files(out, fmt or self.config.output.format, self.input_format)
        from concurrent.futures import ThreadPoolExecutor

        # polars writes without the GIL: the files are written side by side, the report made meanwhile
        with ThreadPoolExecutor(2) as pool:
            writes = [pool.submit(write_frame, frame, *outputs[name]) for name, frame in self.output_frames().items()]
            report = self.report()
            for w in writes:
                w.result()
        paths = {name: path for name, (path, _) in outputs.items()}
        paths.update(stats=out / "stats.json", report=out / "report.md")
        write_text(paths["report"], report)
        write_text(paths["stats"], json.dumps(self.stats, indent=2, sort_keys=True) + "\n")
        return paths


def output_files(out: Path, fmt: str, input_format: str) -> dict[str, tuple[Path, str]]:
    """Each data file's path and format: ``fmt`` (``same``: the input's; ``txt`` input gives
    JSONL) for the records, Parquet for the annotations."""
    if fmt == "same":
        fmt = input_format if input_format in ("jsonl", "parquet", "csv") else "jsonl"
    return {
        "cleaned": (out / f"cleaned.{fmt}", fmt),
        "dropped": (out / f"dropped.{fmt}", fmt),
        "dropped_passages": (out / f"dropped_passages.{fmt}", fmt),
        "annotations": (out / "annotations.parquet", "parquet"),
    }


def _user_records(frame: pl.DataFrame, config: PipelineConfig, input_columns: list[str], text_col: str) -> pl.DataFrame:
    """Rebuild the user's own columns (id and text under their own names) from the document frame."""
    id_field, text_field = config.input.id_field, config.input.text_field
    cols = [pl.col(S.DOC_ID).alias(id_field)]
    cols.append(pl.col(text_col).alias(text_field))
    cols += [pl.col(c) for c in input_columns if c not in (id_field, text_field)]
    return frame.select(cols)


def _prepare_frame(frame: pl.DataFrame, config: PipelineConfig) -> pl.DataFrame:
    """Bring a user's polars frame to the document-frame shape (as io does for files)."""
    from .errors import InputError

    tf, idf = config.input.text_field, config.input.id_field
    if tf not in frame.columns:
        raise InputError(
            f"frame: no text column {tf!r}; columns present: {', '.join(frame.columns)}; set input.text_field"
        )
    n = frame.height
    ids = (
        frame[idf].cast(pl.String)
        if idf in frame.columns
        else pl.Series([None] * n, dtype=pl.String)
    )
    ids = pl.Series([i if i is not None else f"frame-{k}" for k, i in enumerate(ids.to_list())], dtype=pl.String)
    base = pl.DataFrame(
        {
            S.ROW: pl.Series(range(n), dtype=pl.Int64),
            S.SOURCE_LINE: pl.Series(range(1, n + 1), dtype=pl.Int64),
            S.DOC_ID: ids,
            S.TEXT: frame[tf].cast(pl.String),
            S.DECODE_ERROR: pl.Series([False] * n, dtype=pl.Boolean),
            MALFORMED: pl.Series([None] * n, dtype=pl.String),
        }
    )
    others = [c for c in frame.columns if c not in (tf, idf) and c not in INTERNAL]
    return pl.concat([base, frame.select(others)], how="horizontal") if others else base


def clean_text(norm: str, spans: list[tuple[int, int, bool]]) -> str:
    """The normalised text with dropped passages cut out, with the break that followed each.

    ``spans`` are ``(norm_start, norm_end, dropped)`` of a document's passages in order.

    >>> clean_text("A.\\n\\nB.\\n\\nC.", [(0, 2, False), (4, 6, True), (8, 10, False)])
    'A.\\n\\nC.'
    >>> clean_text("A.\\n\\nB.", [(0, 2, False), (4, 6, True)])
    'A.'
    """
    if not any(d for _, _, d in spans):
        return norm
    pieces, pos = [], 0
    for k, (s, e, dropped) in enumerate(spans):
        if not dropped:
            continue
        if k + 1 < len(spans):
            cut_end = spans[k + 1][0]  # up to the next passage: the break goes too
            cut_start = s
        else:
            cut_end = len(norm)
            cut_start = spans[k - 1][1] if k else s  # the last one: take the break before it
        if cut_start < pos:
            cut_start = pos
        pieces.append(norm[pos:cut_start])
        pos = max(pos, cut_end)
    pieces.append(norm[pos:])
    return "".join(pieces)


def duplicate_ids(documents: pl.DataFrame, examples: int = 10) -> dict[str, Any]:
    """Ids given to more than one record. Every record is still kept or dropped on its own; the ids are
    reported (with their lines) because a user joining outputs back by id would mix them up."""
    dup = (
        documents.group_by(S.DOC_ID).agg(pl.col(S.SOURCE_LINE).sort().alias("lines"), pl.len().alias("n"))
        .filter(pl.col("n") > 1).sort(pl.col("lines").list.first())
    )
    return {
        "ids": dup.height,
        "records": int(dup["n"].sum()) if dup.height else 0,
        "examples": [{"id": i, "lines": lines[:10]} for i, lines in dup.head(examples).select(S.DOC_ID, "lines").iter_rows()],
    }


def _untimed(name: str, fn, *args, **kwargs):
    return fn(*args, **kwargs)


def document_stage(documents: pl.DataFrame, config: PipelineConfig, *, timed=_untimed) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Every stage that looks at one document at a time: normalise, drop malformed and empty records,
    segment, within-document pairs, garble scoring of passages. A batch of whole documents in, the
    same documents (with ``drop_reason`` for the early drops) and their passages out; no state is kept,
    so any engine may run it on any partition of the corpus.
    """
    docs = timed("normalise", normalise, documents, config.normalise)
    malformed = docs[MALFORMED].is_not_null()
    empty = ~malformed & (docs[S.TEXT_NORM].str.strip_chars().fill_null("") == "")
    early_drop = pl.when(malformed).then(pl.lit(S.REASON_MALFORMED)).when(empty).then(pl.lit(S.REASON_EMPTY))
    docs = docs.with_columns(early_drop.otherwise(None).alias(S.DROP_REASON))
    live = docs.filter(pl.col(S.DROP_REASON).is_null())
    passages = timed("segment", segment, live, config.segment)
    passages = timed("pairs", find_pairs, passages, config.pairs)
    if config.garble.enabled:
        passages = timed("garble", score_passages, passages, live, config.garble)
        passages = _garble_action(passages, config.garble.action)
    else:
        passages = _unscored(passages)
    return docs, passages


def document_stats(docs: pl.DataFrame, passages: pl.DataFrame, config: PipelineConfig) -> dict[str, dict]:
    """Counts of the document stage, by stage. Every number is a sum over documents, so the counts of
    separate batches add up to those of the whole corpus (:func:`add_counts`)."""
    fixes = docs[S.NORM_FIXES].explode().drop_nulls().value_counts(sort=True)
    roles = passages.filter(pl.col(S.P_ROLE).is_not_null())
    out = {
        "normalise": {
            "documents_changed": int((docs[S.NORM_FIXES].list.len() > 0).sum()),
            "changes": int(docs[S.NORM_CHANGES].list.len().sum()),
            "documents_by_fixer": {k: int(v) for k, v in fixes.iter_rows()},
            "decode_errors": int(docs[S.DECODE_ERROR].sum()),
        },
        "segment": {
            "passages": passages.height,
            "by_kind": {k: int(v) for k, v in passages[S.P_KIND].value_counts(sort=True).iter_rows()},
        },
        "pairs": {
            "caption_pairs": int(((roles[S.P_PAIR_KIND] == "caption") & (roles[S.P_ROLE] != "original")).sum()),
            "repeats": int(((roles[S.P_PAIR_KIND] == "repeat") & (roles[S.P_ROLE] != "original")).sum()),
            "verbatim": int((roles[S.P_ROLE] == "verbatim").sum()),
            "passages_dropped": int((passages[S.P_ACTION] == "drop").sum()),
            "documents_with_pairs": int(roles[S.ROW].n_unique()) if roles.height else 0,
        },
    }
    if config.garble.enabled:
        out["garble"] = _garble_stats(passages)
    return out


def add_counts(a: dict, b: dict) -> dict:
    """Sum two nested dicts of counts key by key (stats of two batches -> stats of both).

    >>> add_counts({"x": 1, "by": {"a": 2}}, {"x": 3, "by": {"a": 1, "b": 5}})
    {'x': 4, 'by': {'a': 3, 'b': 5}}
    """
    out = dict(a)
    for k, v in b.items():
        if isinstance(v, dict):
            out[k] = add_counts(out.get(k, {}), v)
        else:
            out[k] = out.get(k, 0) + v
    return out


def remove_stale(out: Path) -> None:
    """Remove the temporary files a killed run left in an output folder."""
    for stale in [*out.glob(".*.tmp"), *out.glob(".*.tmp.*")]:
        stale.unlink(missing_ok=True)


class Checkpoints:
    """Per-batch results of the document stage in a work folder, so that a killed run can resume.

    The folder holds ``manifest.json`` (a fingerprint of the input and the config) and, per batch
    ``k``, its results in parts (``docs-k-p.parquet`` and ``passages-k-p.parquet``: one part, or one
    per job when processes share the batch) and, once every part is written, ``batch-k.json``, which
    marks the batch done. Every file is written atomically. A batch is reused only when the manifest
    matches; the document stage is per document, so results made in batches or parts equal those
    made at once (a test kills a real run and compares the bytes).
    """

    def __init__(self, folder: Path, fingerprint: str, resume: bool) -> None:
        import shutil

        self.folder = folder
        manifest = folder / "manifest.json"
        if resume:
            if not manifest.exists():
                raise DedupError(f"{folder.parent}: nothing to resume (no {folder.name}/manifest.json); run without --resume")
            if json.loads(manifest.read_text(encoding="utf-8")).get("fingerprint") != fingerprint:
                raise DedupError(f"{folder.parent}: cannot resume: the input or the config changed since the interrupted "
                                 f"run; run without --resume to start again")
        else:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
            write_text(manifest, json.dumps({"fingerprint": fingerprint}) + "\n")
        self.reused = 0

    def path(self, kind: str, k: int, ext: str = "parquet") -> Path:
        return work_file(self.folder, kind, k, ext)

    def done(self, k: int) -> bool:
        return self.path("batch", k, "json").exists()

    def load(self, k: int) -> tuple[pl.DataFrame, pl.DataFrame] | None:
        """A finished batch of an earlier run (counted as reused), or None."""
        if self.done(k):
            self.reused += 1
            return self.read(k)
        return None

    def read(self, k: int) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The documents and passages of finished batch ``k``."""
        return read_batch(self.folder, k)

    def save(self, k: int, docs: pl.DataFrame, passages: pl.DataFrame, extra: dict[str, Any] | None = None) -> None:
        """Save a batch in one part (:func:`save_batch`)."""
        save_batch(self.folder, k, docs, passages, extra)

    def finish(self, k: int, parts: int) -> None:
        """Mark batch ``k`` done: its ``parts`` parts are written."""
        finish_batch(self.folder, k, parts)

    def remove(self) -> None:
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)


def work_file(folder: Path, kind: str, k: int, ext: str = "parquet") -> Path:
    """The work folder's file of ``kind`` for batch ``k`` (``batch-000003.json``, ``keys-000003.parquet``)."""
    return folder / f"{kind}-{k:06d}.{ext}"


def read_batch(folder: Path, k: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The documents and passages of finished batch ``k`` in the work ``folder``."""
    parts = json.loads(work_file(folder, "batch", k, "json").read_text(encoding="utf-8"))["parts"]
    return _concat([read_part(folder, k, p) for p in range(parts)])


def save_batch(folder: Path, k: int, docs: pl.DataFrame, passages: pl.DataFrame, extra: dict[str, Any] | None = None) -> None:
    """Save batch ``k`` in one part to the work ``folder``; ``extra`` maps file names
    (``"keys-000003.parquet"``) to writers ``fn(tmp_path)``, written before the batch is marked done.
    Any process may run it (a worker saves the batch it staged)."""
    save_part(folder, k, 0, docs, passages)
    for name, writer in (extra or {}).items():
        write_atomic(folder / name, writer)
    finish_batch(folder, k, 1)


def finish_batch(folder: Path, k: int, parts: int) -> None:
    """Mark batch ``k`` done: its ``parts`` parts are written."""
    write_text(work_file(folder, "batch", k, "json"), json.dumps({"parts": parts}) + "\n")


def part_files(folder: Path, k: int, p: int) -> tuple[Path, Path]:
    """The documents and passages files of part ``p`` of batch ``k``."""
    return folder / f"docs-{k:06d}-{p:03d}.parquet", folder / f"passages-{k:06d}-{p:03d}.parquet"


def read_part(folder: Path, k: int, p: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The documents and passages of part ``p`` of batch ``k``."""
    docs, passages = part_files(folder, k, p)
    return pl.read_parquet(docs), pl.read_parquet(passages)


def save_part(folder: Path, k: int, p: int, docs: pl.DataFrame, passages: pl.DataFrame) -> None:
    """Write part ``p`` of batch ``k``, each file atomically, in zstd level 1: a third faster to
    write than the default level 3, for 15% more bytes (Reuters dev), in files that live one run."""
    for frame, path in zip((docs, passages), part_files(folder, k, p)):
        write_atomic(path, lambda tmp, frame=frame: frame.write_parquet(tmp, compression="zstd", compression_level=1))


def fingerprint(source, config: PipelineConfig) -> str:
    """What a resumed run must share with the interrupted one: the input file(s) and the config."""
    import hashlib

    from . import __version__

    parts = [__version__, json.dumps(config.to_dict(), sort_keys=True)]
    path = Path(str(source))
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        st = f.stat()
        parts.append(f"{f.resolve()}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _staged(documents: pl.DataFrame, config: PipelineConfig, checkpoints: Checkpoints | None, timed,
            workers: Workers, bar=None):
    """The document stage over the whole frame, or batch by batch through the checkpoints; batches
    not already done are shared between this process and the workers when there are several, and
    each is checkpointed as it finishes. ``bar`` (a progress bar over the documents) moves as each
    batch or job is done."""
    advance = bar.update if bar is not None else (lambda n: None)
    if checkpoints is None:
        out = document_stage(documents, config, timed=timed)
        advance(documents.height)
        return out
    size = config.output.checkpoint_documents
    starts = list(range(0, max(documents.height, 1), size))
    done = {k: checkpoints.load(k) for k in range(len(starts))}
    todo = [k for k, d in done.items() if d is None]
    pending = sum(min(size, documents.height - starts[k]) for k in todo)  # documents not in a finished batch
    advance(documents.height - pending)  # the batches resumed
    if workers.count <= 1:
        for k in todo:
            done[k] = _stage_job(documents.slice(starts[k], size), config, timed, threads=0)
            checkpoints.save(k, *done[k])
            advance(done[k][0].height)
    else:
        # jobs of at most a batch, several per process, so that the processes finish together
        # (an empty corpus is one empty batch, and one job). Each job saves its part of the batch
        # itself: writing it costs a worker less than sending it back through the pool's pipe.
        step = job_size(pending, workers.count, _MIN_JOB, size,
                        per_process=_DOC_JOBS_PER_PROCESS)
        ends = {k: min(starts[k] + size, documents.height) for k in todo}
        pieces = {k: max(1, -(-(ends[k] - starts[k]) // step)) for k in todo}  # jobs (parts) per batch
        jobs = [(k, p, starts[k] + p * step, min(starts[k] + (p + 1) * step, ends[k])) for k in todo for p in range(pieces[k])]
        parts: dict[int, dict[int, tuple]] = {k: {} for k in todo}
        if bar is not None:
            bar.set_postfix_str("per-document stages")  # on every process: no one stage to name
        for i, (frames, seconds) in workers.run(
            _stage_part, [(documents.slice(lo, hi - lo), config, checkpoints.folder, k, p) for k, p, lo, hi in jobs]
        ):
            for name, value in seconds.items():
                timed.add(name, value)
            k, p, lo, hi = jobs[i]
            advance(hi - lo)
            parts[k][p] = frames or read_part(checkpoints.folder, k, p)
            if len(parts[k]) == pieces[k]:  # the batch is whole
                checkpoints.finish(k, pieces[k])
                batch = parts.pop(k)
                done[k] = _concat([batch[p] for p in range(pieces[k])])
    return _concat([done[k] for k in range(len(starts))])


_MIN_JOB = 250  # documents per job for a worker process (fewer are not worth the pickling)
# about two jobs per process (a job is still at most a batch): each document-stage call and each part
# it saves has a fixed cost, and on Reuters dev two per process beat eight by 0.1 s and three by 0.03 s
_DOC_JOBS_PER_PROCESS = 2


def _concat(parts: list[tuple[pl.DataFrame, pl.DataFrame]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Documents and passages of consecutive parts of a corpus, as one."""
    # diagonal: a batch checkpointed by an older version may lack cluster_inputs' columns (nulls then)
    return pl.concat([d for d, _ in parts], how="diagonal_relaxed"), pl.concat([p for _, p in parts], how="vertical_relaxed")


def _stage_part(documents: pl.DataFrame, config: PipelineConfig, folder: Path, k: int, p: int):
    """One job of the document stage: part ``p`` of batch ``k``, saved to the work ``folder``.

    Returns ``(frames, seconds per stage)``; the frames (documents, passages) only in the process
    that runs the pipeline (a worker's caller reads them from the files, see :func:`_staged`)."""
    import multiprocessing

    stats: dict[str, Any] = {}
    docs, passages = _stage_job(documents, config, stage_timer(stats), threads=1)  # a process per core runs this
    save_part(folder, k, p, docs, passages)
    frames = (docs, passages) if multiprocessing.parent_process() is None else None
    return frames, {name: block["seconds"] for name, block in stats.items()}


def _stage_job(documents: pl.DataFrame, config: PipelineConfig, timed, *, threads: int):
    """The document stage of a batch, and each document's inputs to the corpus stage
    (:func:`dedup.cluster.cluster_inputs`, on ``threads`` threads), which then only links."""
    docs, passages = document_stage(documents, config, timed=timed)
    return timed("cluster", cluster_inputs, docs, config.cluster, threads), passages


def stage_timer(stats: dict[str, Any], bar=None):
    """``timed(name, fn, *args)``: run ``fn`` and add its seconds to ``stats[name]["seconds"]``; the
    progress ``bar`` names the stage running."""

    def add(name: str, seconds: float) -> None:
        block = stats.setdefault(name, {})
        block["seconds"] = round(block.get("seconds", 0.0) + seconds, 4)  # summed over batches

    def timed(name: str, fn, *args, **kwargs):
        if bar is not None:
            bar.set_postfix_str(name)
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        add(name, time.perf_counter() - t0)
        return out

    timed.add = add  # seconds measured elsewhere (a worker process)
    return timed


def finish_documents(docs: pl.DataFrame, passages: pl.DataFrame, config: PipelineConfig, timed=_untimed,
                     kept: pl.DataFrame | None = None, workers: Workers | None = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """After clustering: drop reasons of copies, garble scores of near duplicates (against the copies
    their clusters kept, looked up in ``kept``, default ``docs``; on the ``workers`` when given),
    cleaned text, and each passage's document verdict. Per document, given its cluster columns, so it
    runs on any batch."""
    reason = (
        pl.when(pl.col(S.DROP_REASON).is_not_null()).then(pl.col(S.DROP_REASON))
        .when(pl.col(S.DUP_KIND) == "exact").then(pl.lit(S.REASON_EXACT))
        .when(pl.col(S.DUP_KIND) == "near").then(pl.lit(S.REASON_NEAR))
        .otherwise(None)
    )
    docs = docs.with_columns(reason.alias(S.DROP_REASON))
    if config.garble.scores_copies:
        near = int((docs[S.DUP_KIND] == "near").sum())
        pool = workers.pool(near // _NEAR_PER_JOB) if workers is not None else None
        docs = timed("garble", score_documents, docs, config.garble, kept, pool, workers.count if pool else 1)
    else:
        docs = _unscored(docs).drop(S.G_MODE)
    return timed("output", _finish, docs, passages)


_NEAR_PER_JOB = 64  # near duplicates that make scoring them in the worker processes worth it


def result_counts(docs: pl.DataFrame) -> dict[str, Any]:
    """Kept and dropped records, by reason (sums over documents: batches add up)."""
    counts = docs[S.DROP_REASON].fill_null("kept").value_counts(sort=True)
    by_reason = {k: int(v) for k, v in counts.iter_rows()}
    kept = by_reason.pop("kept", 0)
    return {"kept": kept, "dropped": sum(by_reason.values()), "dropped_by_reason": by_reason}


def check_accounting(stats: dict[str, Any]) -> None:
    res = stats["result"]
    res["dropped_by_reason"] = dict(sorted(res["dropped_by_reason"].items(), key=lambda kv: (-kv[1], kv[0])))
    if res["kept"] + res["dropped"] != stats["input"]["records"]:  # the accounting invariant
        raise AssertionError("kept + dropped != input: a record was lost")


def run(documents: pl.DataFrame, config: PipelineConfig, workers: Workers, *, progress: bool = False,
        checkpoints: Checkpoints | None = None) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Run every stage on a document frame, sharing the work with ``workers`` (the caller's, who
    closes them); return documents, passages and stats."""
    stats: dict[str, Any] = {"input": {"records": documents.height, "duplicate_ids": duplicate_ids(documents)}}

    bar = None
    if progress:
        import sys

        from tqdm import tqdm

        # documents through the per-document stages; then the corpus stages, named beside the full bar
        bar = tqdm(total=documents.height, desc="dedup", unit="doc", file=sys.stderr, leave=False)
    timed = stage_timer(stats, bar)

    docs, passages = _staged(documents, config, checkpoints, timed, workers, bar)
    if checkpoints is not None:
        stats["input"]["resumed_batches"] = checkpoints.reused
    for name, counts in document_stats(docs, passages, config).items():
        stats.setdefault(name, {}).update(counts)

    docs, cstats = timed(
        "cluster", cluster_documents, docs, config.cluster,
        active=docs[S.DROP_REASON].is_null(), date_field=config.input.date_field,
    )
    stats["cluster"].update(cstats)
    docs, passages = finish_documents(docs, passages, config, timed, workers=workers)
    if config.garble.scores_copies:
        stats["garble"]["near_duplicates_garbled"] = int((docs[S.G_LABEL] == "garbled").sum())
    if bar is not None:
        bar.close()
    stats["result"] = result_counts(docs)
    check_accounting(stats)
    return docs, passages, stats


def _unscored(frame: pl.DataFrame) -> pl.DataFrame:
    """The garble columns, empty, when the stage is switched off."""
    from .garble import NOT_SCORED
    from .garble_stage import reason_dtype

    return frame.with_columns(
        pl.lit(None, dtype=pl.Float64).alias(S.G_SCORE), pl.lit(NOT_SCORED).alias(S.G_LABEL),
        pl.lit(None, dtype=pl.String).alias(S.G_MODE), pl.lit([], dtype=pl.List(reason_dtype())).alias(S.G_REASONS),
    )


def _garble_action(passages: pl.DataFrame, action: str) -> pl.DataFrame:
    """With ``garble.action = "drop"``, a garbled passage still kept leaves the cleaned text."""
    if action != "drop":
        return passages
    hit = (pl.col(S.G_LABEL) == "garbled") & (pl.col(S.P_ACTION) != "drop")
    return passages.with_columns(
        pl.when(hit).then(pl.lit(S.REASON_GARBLED)).otherwise(pl.col(S.DROP_REASON)).alias(S.DROP_REASON),
        pl.when(hit).then(pl.lit("drop")).otherwise(pl.col(S.P_ACTION)).alias(S.P_ACTION),
    )


def _garble_stats(passages: pl.DataFrame) -> dict[str, Any]:
    labels = passages[S.G_LABEL].value_counts(sort=True)
    types = passages[S.G_REASONS].explode().drop_nulls().struct.field("type").value_counts(sort=True)
    by_mode = passages.filter(pl.col(S.G_LABEL) == "garbled")[S.G_MODE].value_counts(sort=True)
    return {
        "by_label": {k: int(v) for k, v in labels.iter_rows()},
        "garbled_by_mode": {k: int(v) for k, v in by_mode.iter_rows()},
        "reasons_by_type": {k: int(v) for k, v in types.iter_rows()},
        "passages_dropped": int((passages[S.DROP_REASON] == S.REASON_GARBLED).sum()),
    }


def cleaned_texts(docs: pl.DataFrame, passages: pl.DataFrame) -> list[str | None]:
    """Each document's normalised text without its dropped passages (None for a dropped document)."""
    kept = docs.select(pl.when(pl.col(S.DROP_REASON).is_null()).then(pl.col(S.TEXT_NORM).fill_null(""))).to_series()
    out = kept.to_list()  # most documents drop no passage: their cleaned text is the normalised one
    cutting = passages.filter(pl.col(S.ROW).is_in(passages.filter(pl.col(S.P_ACTION) == "drop")[S.ROW].implode()))
    if cutting.height:
        spans: dict[int, list] = {}
        for row, s, e, action in cutting.select(S.ROW, S.P_NORM_START, S.P_NORM_END, S.P_ACTION).iter_rows():
            spans.setdefault(row, []).append((s, e, action == "drop"))
        at = {row: k for k, row in enumerate(docs[S.ROW].to_list()) if row in spans}
        for row, k in at.items():
            if out[k] is not None:
                out[k] = clean_text(out[k], spans[row])
    return out


def _finish(docs: pl.DataFrame, passages: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cleaned text per document; passage rows get their document's cluster and drop reason."""
    docs = docs.with_columns(pl.Series(S.TEXT_CLEAN, cleaned_texts(docs, passages), dtype=pl.String))
    doc_cols = docs.select(S.ROW, S.CLUSTER_ID, S.DUPLICATE_OF, S.DECODE_ERROR, pl.col(S.DROP_REASON).alias("_doc_reason"))
    passages = passages.join(doc_cols, on=S.ROW, how="left").with_columns(
        pl.when(pl.col("_doc_reason").is_not_null()).then(pl.lit("drop")).otherwise(pl.col(S.P_ACTION)).alias(S.P_ACTION),
        pl.coalesce(pl.col("_doc_reason"), pl.col(S.DROP_REASON)).alias(S.DROP_REASON),
    ).drop("_doc_reason").sort(S.ROW, S.P_INDEX)
    return docs, passages


def clean(source: str | Path | pl.DataFrame, config: PipelineConfig | None = None, *, progress: bool = False,
          workdir: str | Path | None = None, resume: bool = False, workers: Workers | None = None) -> Result:
    """Clean a corpus: a path (JSONL/.gz, Parquet, CSV, .txt or a directory of them, ``-``) or a polars frame.

    With ``workdir``, the per-document stages save their results there batch by batch, and with
    ``resume`` a run reuses the batches an interrupted run with the same input and config finished.
    Such a run over files shares its work with ``engine.processes - 1`` worker processes (``workers``:
    already started by the caller, who closes them; by default :meth:`Workers.for_input`).
    """
    config = config or PipelineConfig()
    t0 = time.perf_counter()
    resumable = workdir is not None and not isinstance(source, pl.DataFrame) and str(source) != "-"
    own = workers is None
    if own:  # a frame given to the API, or a run without a work folder, stays in this process
        workers = Workers.for_input(source, config.engine.processes) if resumable else Workers(1)
    try:
        return _clean(source, config, progress, workdir if resumable else None, resume, workers, t0)
    finally:
        if own:
            workers.close()


def _clean(source, config: PipelineConfig, progress: bool, workdir, resume: bool, workers: Workers, t0: float) -> Result:
    if isinstance(source, pl.DataFrame):
        documents, fmt = _prepare_frame(source, config), "parquet"
        name = "<frame>"
    else:
        documents, fmt = read_input(source, config.input)
        name = str(source)
    read_seconds = time.perf_counter() - t0
    input_columns = [config.input.id_field, config.input.text_field] + [c for c in documents.columns if c not in INTERNAL]
    checkpoints = None
    if workdir is not None:
        checkpoints = Checkpoints(Path(workdir), fingerprint(source, config), resume)
    elif resume:
        raise DedupError("--resume needs an input file or folder (not stdin or a frame)")
    docs, passages, stats = run(documents, config, workers, progress=progress, checkpoints=checkpoints)
    stats["input"].update(source=name, format=fmt, seconds=round(read_seconds, 4))
    stats["total_seconds"] = round(time.perf_counter() - t0, 4)
    stats["config"] = config.to_dict()
    return Result(docs, passages, stats, config, fmt, input_columns)
