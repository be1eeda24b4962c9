"""The command line: parse, call the library, turn a DedupError into one line on stderr."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import schema as S
from .config import load_config
from .errors import DedupError

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
    _common(c)

    e = sub.add_parser("explain", help="show which fixes fired on a text, and what a document's passages matched",
                       description="Explain one text (--text) or one document of a corpus (INPUT --doc ID).", epilog=EPILOG)
    e.add_argument("input", nargs="?", help="a corpus to run, for --doc")
    e.add_argument("--text", help="explain the normalisation of this text")
    e.add_argument("--doc", help="id of the document to explain")
    e.add_argument("--passage", type=int, help="only this passage (0-based index) of the document")
    _common(e)
    return parser


def cmd_clean(args) -> int:
    from .pipeline import clean

    overrides = list(args.overrides)
    if args.on_error:
        overrides.append(f"input.on_error={args.on_error}")
    if args.format:
        overrides.append(f"output.format={args.format}")
    config = load_config(args.config, overrides)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise DedupError(f"{out} exists and is not a directory; choose another -o/--output")
    progress = not args.quiet and sys.stderr.isatty()
    result = clean(args.input, config, progress=progress)
    paths = result.write(out)
    if not args.quiet:
        r = result.stats["result"]
        reasons = ", ".join(f"{k} {v}" for k, v in r["dropped_by_reason"].items()) or "none"
        print(
            f"{result.stats['input']['records']} records: {r['kept']} kept, {r['dropped']} dropped ({reasons}); "
            f"{result.stats['pairs']['passages_dropped']} passages dropped; report: {paths['report']}",
            file=sys.stderr,
        )
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
            if args.passage is not None:
                print(f"      partner: {texts.get(p[S.P_PARTNER])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"clean": cmd_clean, "explain": cmd_explain}[args.command](args)
    except DedupError as exc:
        print(f"dedup error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
