"""The command line: parse, call the library, turn a DedupError into one line on stderr."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from . import schema as S
from .config import load_config
from .errors import DedupError
from .jobs import Workers

EPILOG = "Settings live in TOML (configs/default.toml lists every key); --set section.key=value overrides one."


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML config file (default: built-in defaults)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config key, e.g. --set cluster.keep=longest (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dedup", description="Clean and deduplicate scraped news corpora.", epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("clean", help="clean a corpus and write the cleaned corpus, annotations and a report",
                       description="Clean a corpus: JSONL (.gz), Parquet, CSV, a .txt file, a directory of .txt files, or - for stdin.",
                       epilog=EPILOG)
    c.add_argument("input", help="input file or directory, or - for stdin")
    c.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory")
    c.add_argument("--format", choices=["same", "jsonl", "parquet", "csv"], help="format of the cleaned corpus (default: as the input)")
    c.add_argument("--on-error", choices=["raise", "skip"], help="on a malformed record: stop (raise) or drop it and go on (skip)")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    c.add_argument("--resume", action="store_true",
                   help="continue a killed run into the same -o folder from its last finished batch (same input and config)")
    c.add_argument("--engine", choices=["polars", "spark"], help="run embedded (polars, default) or on Apache Spark")
    c.add_argument("--master", metavar="URL", help="Spark master for --engine spark: local[2], spark://host:7077, yarn")
    c.add_argument("--memory-budget", metavar="SIZE", help='peak memory to stay within, e.g. 2GB: the corpus streams '
                                                           'through in batches sized to it (engine.memory_budget)')
    _common(c)

    e = sub.add_parser("explain", help="show which fixes fired on a text, and what a document's passages matched",
                       description="Explain one text (--text) or one document of a corpus (INPUT --doc ID).", epilog=EPILOG)
    e.add_argument("input", nargs="?", help="a corpus to run, for --doc")
    e.add_argument("--text", help="explain the normalisation of this text")
    e.add_argument("--doc", help="id of the document to explain")
    e.add_argument("--passage", type=int, help="only this passage (0-based index) of the document")
    _common(e)

    g = sub.add_parser(
        "score", help="garble-score a pair of texts, one text, or a file of pairs or passages",
        description="Score how a rewrite distorts its original (--original/--rewrite, or a file with columns "
                    "'original' and 'rewrite'), or score passages on intrinsic signals alone (--text, or a file "
                    "with a 'text' column). A file's results go to -o (JSONL, Parquet or CSV by its extension) "
                    "or to stdout as JSONL.", epilog=EPILOG)
    g.add_argument("input", nargs="?", help="JSONL (.gz), Parquet or CSV file of pairs or passages")
    g.add_argument("--original", help="the original text (with --rewrite)")
    g.add_argument("--rewrite", help="the rewritten text to score against --original")
    g.add_argument("--text", help="score this text alone (unpaired)")
    g.add_argument("-o", "--output", metavar="FILE", help="write a file's results here (default: JSONL on stdout)")
    g.add_argument("--original-field", default="original", help="column holding the original (default: original)")
    g.add_argument("--rewrite-field", default="rewrite", help="column holding the rewrite (default: rewrite)")
    g.add_argument("--text-field", default="text", help="column holding a passage to score alone (default: text)")
    g.add_argument("--context-field", help="column grouping passages into documents: names spelled in the same "
                                           "document are context for the unpaired detectors")
    g.add_argument("--json", action="store_true", help="print a single verdict as JSON")
    _common(g)
    return parser


def cmd_clean(args) -> int:
    overrides = list(args.overrides)
    if args.on_error:
        overrides.append(f"input.on_error={args.on_error}")
    if args.format:
        overrides.append(f"output.format={args.format}")
    if args.engine:
        overrides.append(f"engine.name={args.engine}")
    if args.master:
        overrides.append(f'engine.master="{args.master}"')
    if args.memory_budget:
        overrides.append(f'engine.memory_budget="{args.memory_budget}"')
    config = load_config(args.config, overrides)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise DedupError(f"{out} exists and is not a directory; choose another -o/--output")
    if config.engine.name == "spark":
        return _clean_on_spark(args, config)
    progress = not args.quiet and sys.stderr.isatty()
    if config.engine.memory_budget:
        return _clean_streaming(args, config, out, progress)
    work = out / ".dedup-work"
    # the workers start before this process imports the stages, so both get ready at once
    workers = Workers.for_input(args.input, config.engine.processes)
    try:
        from .pipeline import clean

        # clean() keeps no work folder for stdin (and then refuses --resume)
        result = clean(args.input, config, progress=progress, workdir=work, resume=args.resume, workers=workers)
        paths = result.write(out)
    finally:
        workers.close()
    shutil.rmtree(work, ignore_errors=True)  # the run is finished: nothing left to resume
    if not args.quiet:
        _summary(result.stats, paths["report"])
    return 0


def _summary(stats: dict, report: Path) -> None:
    r = stats["result"]
    reasons = ", ".join(f"{k} {v}" for k, v in r["dropped_by_reason"].items()) or "none"
    print(
        f"{stats['input']['records']} records: {r['kept']} kept, {r['dropped']} dropped ({reasons}); "
        f"{stats['pairs']['passages_dropped']} passages dropped as repeats; "
        f"{stats.get('garble', {}).get('by_label', {}).get('garbled', 0)} passages garbled; report: {report}",
        file=sys.stderr,
    )


def _clean_streaming(args, config, out: Path, progress: bool) -> int:
    from .stream import clean_cli

    stats = clean_cli(args.input, config, out, progress=progress, resume=args.resume)
    if not args.quiet:
        _summary(stats, out / "report.md")
        eng = stats["engine"]
        print(f"streamed in {eng['batches']} batches on {eng['processes']} process(es); memory for data peaked at "
              f"{eng['data_peak_bytes'] / 1e6:.0f} MB of the {eng['memory_budget']} budget "
              f"({eng['peak_rss_bytes'] / 1e6:.0f} MB with what dedup holds before reading)", file=sys.stderr)
    return 0


def _clean_on_spark(args, config) -> int:
    from .engines.spark import clean_spark

    if args.resume:
        raise DedupError("--resume is for the polars engine; on Spark, failed tasks are retried by Spark itself")
    if config.engine.memory_budget:
        raise DedupError("--memory-budget is for the polars engine; on Spark set engine.driver_memory and "
                         "Spark's executor memory instead")

    try:
        stats = clean_spark(args.input, config, args.output)
    except DedupError:
        raise
    except Exception as exc:  # a failed Spark job: one line, not a JVM stack trace
        if not type(exc).__module__.startswith(("pyspark", "py4j")):
            raise
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise DedupError(f"the Spark job failed ({first[:300]}); check engine.master and the Spark logs") from None
    if not args.quiet:
        r = stats["result"]
        reasons = ", ".join(f"{k} {v}" for k, v in r["dropped_by_reason"].items()) or "none"
        print(f"{stats['input']['records']} records: {r['kept']} kept, {r['dropped']} dropped ({reasons}) on Spark "
              f"{stats['engine']['master']}; report: {Path(args.output) / 'report.md'}", file=sys.stderr)
    return 0


def cmd_explain(args) -> int:
    from .normalise import normalise_text

    config = load_config(args.config, args.overrides)
    if args.text is not None:
        r = normalise_text(args.text, config.normalise)
        print(f"normalised: {r.text!r}")
        if not r.changes:
            print("no fixer changed this text")
        for ch in r.changes:
            detail = f" ({ch['detail']})" if ch["detail"] else ""
            print(f"{ch['fixer']}{detail}: raw {ch['raw_start']}-{ch['raw_end']} {ch['before']!r} -> {ch['after']!r}")
        return 0
    if not args.input or args.doc is None:
        raise DedupError("explain needs --text TEXT, or INPUT --doc ID (e.g. dedup explain corpus.jsonl --doc reuters-1)")
    from .pipeline import clean

    result = clean(args.input, config)
    doc = result.documents.filter(result.documents[S.DOC_ID] == args.doc)
    if doc.height == 0:
        raise DedupError(f"{args.input}: no document with id {args.doc!r}; ids look like {result.documents[S.DOC_ID][0]!r}")
    d = doc.row(0, named=True)
    print(f"document {d[S.DOC_ID]} (record {d[S.ROW] + 1}): {'kept' if d[S.DROP_REASON] is None else 'dropped: ' + d[S.DROP_REASON]}")
    if d[S.DUPLICATE_OF]:
        print(f"  {d[S.DUP_KIND]} duplicate of {d[S.DUPLICATE_OF]} (similarity {d[S.DUP_SIMILARITY]:.1f}), cluster {d[S.CLUSTER_ID]}")
    print(f"  fixes: {', '.join(d[S.NORM_FIXES]) or 'none'}")
    for ch in d[S.NORM_CHANGES]:
        print(f"    {ch['fixer']}: raw {ch['raw_start']}-{ch['raw_end']} {ch['before']!r} -> {ch['after']!r}")
    passages = result.passages.filter(result.passages[S.ROW] == d[S.ROW])
    if args.passage is not None:
        passages = passages.filter(passages[S.P_INDEX] == args.passage)
        if passages.height == 0:
            raise DedupError(f"document {args.doc!r} has no passage {args.passage}; it has passages 0-{result.passages.filter(result.passages[S.ROW] == d[S.ROW]).height - 1}")
    texts = dict(result.passages.filter(result.passages[S.ROW] == d[S.ROW]).select(S.P_INDEX, S.P_TEXT).iter_rows())
    for p in passages.iter_rows(named=True):
        head = f"  [{p[S.P_INDEX]}] {p[S.P_KIND]}, raw {p[S.P_START]}-{p[S.P_END]}, {p[S.P_ACTION]}"
        if p[S.DROP_REASON]:
            head += f" ({p[S.DROP_REASON]})"
        print(head)
        print(f"      {p[S.P_TEXT]}")
        if p[S.P_ROLE]:
            print(f"      {p[S.P_PAIR_KIND]} {p[S.P_ROLE]}; partner [{p[S.P_PARTNER]}], similarity {p[S.P_SIMILARITY]:.1f}, "
                  f"shingle Jaccard {p[S.P_JACCARD]:.2f}")
        _explain_garble(p, texts, detail=args.passage is not None)
    return 0


def _explain_garble(p: dict, texts: dict, detail: bool) -> None:
    """The passage's garble verdict and reasons; with ``detail``, side by side with its original."""
    from .render import find_spans, marked, reasons_lines, side_by_side

    if p[S.G_SCORE] is None:
        print(f"      garble: {p[S.G_LABEL]}")
        return
    print(f"      garble: {p[S.G_LABEL]}, score {p[S.G_SCORE]:.3f} ({p[S.G_MODE]})")
    for line in reasons_lines(p[S.G_REASONS], indent="        "):
        print(line)
    if not detail:
        return
    rewrite = marked(p[S.P_TEXT], find_spans(p[S.P_TEXT], [r["text"] for r in p[S.G_REASONS]]))
    if p[S.G_MODE] == "paired" and p[S.P_PARTNER] in texts:
        original = texts[p[S.P_PARTNER]]
        original = marked(original, find_spans(original, [r["orig_text"] for r in p[S.G_REASONS]]))
        print(side_by_side(original, rewrite, (f"original [{p[S.P_PARTNER]}]", f"this passage [{p[S.P_INDEX]}]")))
    elif p[S.G_REASONS]:
        print("      " + rewrite)


def cmd_score(args) -> int:
    import json

    from . import garble
    from .render import marked, reasons_lines, side_by_side

    config = load_config(args.config, args.overrides).garble
    opts = {"threshold": config.threshold, "min_words": config.min_words}
    if args.input is None:
        if args.text is not None and args.original is None and args.rewrite is None:
            v, left = garble.score_text(args.text, **opts), None
            right = args.text
        elif args.original is not None and args.rewrite is not None and args.text is None:
            v = garble.score_pair(args.original, args.rewrite, unpaired=config.unpaired, **opts)
            left, right = args.original, args.rewrite
        else:
            raise DedupError("score needs --original TEXT --rewrite TEXT, or --text TEXT, or a file "
                             "(e.g. dedup score pairs.jsonl -o scored.jsonl)")
        d = v.to_dict()
        for r in d["garble_reasons"]:
            r["severity"] = garble.SEVERITY[r["type"]]
        if args.json:
            print(json.dumps(d, ensure_ascii=False))
            return 0
        print(f"{v.label}: garble_score {v.score:.3f} ({v.mode}; raw noisy-or {v.raw:.3f})")
        print("\n".join(reasons_lines(d["garble_reasons"])) or "  no findings")
        r_spans = [(r.start, r.end) for r in v.reasons]
        if left is not None:
            o_spans = [(r.orig_start, r.orig_end) for r in v.reasons if r.orig_start is not None]
            print(side_by_side(marked(left, o_spans), marked(right, r_spans)))
        else:
            print(marked(right, r_spans))
        return 0
    if args.original or args.rewrite or args.text:
        raise DedupError("score takes a file or --original/--rewrite/--text, not both")
    from .score_file import score_file

    frame = score_file(args.input, args, config)
    if args.output:
        from .io import detect_format, write_frame

        out = Path(args.output)
        fmt = detect_format(out)
        if fmt not in ("jsonl", "parquet", "csv"):
            raise DedupError(f"{out}: cannot write results as {fmt}; name the output .jsonl, .parquet or .csv")
        write_frame(frame, out, fmt)
        labels = frame["garble_label"].value_counts(sort=True)
        print(f"{frame.height} rows scored: " + ", ".join(f"{k} {v}" for k, v in labels.iter_rows()) + f"; written to {out}",
              file=sys.stderr)
    else:
        sys.stdout.write(frame.write_ndjson())
    return 0


def entry() -> None:
    """The ``dedup`` command and ``python -m dedup``: :func:`main`, then exit at once, without the
    interpreter's teardown (freeing every module's objects and polars' pools: about 0.1 s after a
    clean of Reuters dev). When main returns, every output is written, closed and in place, and the
    workers are stopped; the standard streams are flushed and the exit handlers run (multiprocessing's
    among them) before the process ends with main's status. Callers in Python (the tests) use
    :func:`main`, which returns."""
    import atexit
    import os

    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # the reader went away (``dedup ... | head``)
        code = code or 1
    atexit._run_exitfuncs()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"clean": cmd_clean, "explain": cmd_explain, "score": cmd_score}[args.command](args)
    except DedupError as exc:
        print(f"dedup error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
