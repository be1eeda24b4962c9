"""Reading and writing corpora. Stages never import this module.

Every input record becomes one row, even a malformed one (it carries ``_malformed`` with the reason
and leaves as ``dropped``), so that ``kept + dropped == input`` holds for every run. Outputs are
written to a temporary file beside the target and renamed into place, so a killed run never leaves a
partial file under the final name.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from . import schema as S
from .config import InputConfig
from .errors import InputError

MALFORMED = "_malformed"  # the reason a record could not be read (null when it could)
INTERNAL = (S.ROW, S.SOURCE_LINE, S.DOC_ID, S.TEXT, S.DECODE_ERROR, MALFORMED)

_SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".txt": "txt",
}


def detect_format(source: str | Path, declared: str = "auto") -> str:
    """The input format: the declared one, else from the file name (``.gz`` is looked through)."""
    if declared != "auto":
        return declared
    if str(source) == "-":
        return "stdin"
    path = Path(source)
    if path.is_dir():
        return "txt"
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    fmt = _SUFFIXES.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise InputError(
            f"{source}: cannot tell the format from the name; name it .jsonl, .jsonl.gz, .parquet, .csv or "
            f".txt, or set input.format (e.g. --set input.format=jsonl)"
        )
    return fmt


def _open_bytes(path: Path):
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")
    return open(path, "rb")


def _cp1252_bytes(exc: UnicodeDecodeError) -> tuple[str, int]:
    """Decode-error handler: bytes that are not UTF-8 are read as Windows-1252 (a superset of Latin-1's
    printable range, what legacy Western text and browsers use); its five undefined bytes become U+FFFD."""
    bad = exc.object[exc.start : exc.end]
    return bad.decode("cp1252", errors="replace"), exc.end


codecs.register_error("dedup_cp1252", _cp1252_bytes)

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


def utf_bom(data: bytes) -> str | None:
    """The encoding a byte-order mark at the start names (UTF-8, -16 or -32), or None."""
    return next((enc for bom, enc in _BOMS if data.startswith(bom)), None)


def _decode(data: bytes) -> tuple[str, bool]:
    """Text, and whether some bytes were not valid in the encoding the text claims.

    A BOM names the encoding (and is dropped). Otherwise the bytes are UTF-8, and any byte that is not
    (a Latin-1 or Windows-1252 line in a UTF-8 file) is read as Windows-1252 and the record flagged.

    >>> _decode("caf\u00e9 \u201cok\u201d".encode("cp1252")), _decode("hi".encode("utf-16"))
    (('café “ok”', True), ('hi', False))
    """
    enc = utf_bom(data)
    if enc is not None:
        try:
            return data.decode(enc), False
        except UnicodeDecodeError:
            return data.decode(enc, errors="replace"), True
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="dedup_cp1252"), True


EXTRA_JSON = "_extra"  # the other fields of a record as one JSON object (for engines with fixed schemas)


def _record_rows(records: Iterator[dict], name: str, config: InputConfig, *, extras_as_json: bool = False) -> pl.DataFrame:
    """Turn parsed records (each with its line and any error) into the document frame.

    A record may carry its ``row`` (when records are parsed in parts, as another engine does); else
    rows count from 0. With ``extras_as_json`` the fields other than id and text travel as one JSON
    string column instead of one column each.
    """
    rows, extras, extra_names = [], [], {}
    stem = Path(name).name.split(".")[0] or "stdin"
    for k, rec in enumerate(records):
        row = rec.get("row", k)
        data = rec.get("data") or {}
        rid = data.get(config.id_field)
        text = data.get(config.text_field)
        rows.append(
            {
                S.ROW: row,
                S.SOURCE_LINE: rec["line"],
                S.DOC_ID: str(rid) if rid is not None else f"{stem}-{row}",
                S.TEXT: text if isinstance(text, str) else None,
                S.DECODE_ERROR: rec.get("decode_error", False),
                MALFORMED: rec.get("error"),
            }
        )
        extra = {k: v for k, v in data.items() if k not in (config.text_field,)}
        for k in extra:
            extra_names.setdefault(k, None)
        extras.append(extra)
    frame = pl.DataFrame(rows, schema={S.ROW: pl.Int64, S.SOURCE_LINE: pl.Int64, S.DOC_ID: pl.String,
                                       S.TEXT: pl.String, S.DECODE_ERROR: pl.Boolean, MALFORMED: pl.String})
    if extras_as_json:
        values = [json.dumps({k: v for k, v in e.items() if k not in INTERNAL}, ensure_ascii=False, default=str) for e in extras]
        return frame.with_columns(pl.Series(EXTRA_JSON, values, dtype=pl.String))
    columns = {}
    for k in extra_names:
        if k in INTERNAL:
            continue
        values = [e.get(k) for e in extras]
        try:
            columns[k] = pl.Series(k, values, strict=False)
        except (TypeError, ValueError, pl.exceptions.PolarsError):
            columns[k] = pl.Series(k, [None if v is None else json.dumps(v) for v in values], dtype=pl.String)
    return frame.with_columns(list(columns.values())) if columns else frame


def _jsonl_records(lines, name: str, config: InputConfig) -> Iterator[dict]:
    for line_no, raw in enumerate(lines, 1):
        if raw.strip():
            yield parse_jsonl_line(raw, line_no, name, config)


SKIP_HINT = "; fix the line, or pass --on-error skip to drop it and go on"


def parse_jsonl_line(raw: bytes, line_no: int, name: str, config: InputConfig) -> dict:
    """One non-blank JSONL line as a record: its data, or the reason it cannot be read. Under
    ``on_error = "raise"`` a bad line raises :class:`InputError` naming the file and line."""
    text, bad_bytes = _decode(raw.rstrip(b"\r\n"))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"{name} line {line_no}: not valid JSON ({exc.msg}: column {exc.colno})"
        if config.on_error == "raise":
            raise InputError(msg + SKIP_HINT) from None
        return {"line": line_no, "error": msg, "data": None}
    if not isinstance(data, dict):
        msg = f"{name} line {line_no}: a record must be a JSON object, got {type(data).__name__}"
        if config.on_error == "raise":
            raise InputError(msg + SKIP_HINT)
        return {"line": line_no, "error": msg, "data": None}
    error = _field_error(data, name, f"line {line_no}", config)
    if error and config.on_error == "raise":
        raise InputError(error)
    return {"line": line_no, "error": error, "data": data, "decode_error": bad_bytes}


def _field_error(data: dict, name: str, where: str, config: InputConfig) -> str | None:
    if config.text_field not in data:
        fields = ", ".join(map(str, data)) or "(none)"
        return (
            f"{name} {where}: no text field {config.text_field!r}; fields present: {fields}; "
            f"set the text field with --set input.text_field=NAME"
        )
    value = data[config.text_field]
    if value is not None and not isinstance(value, str):
        return f"{name} {where}: field {config.text_field!r} is {type(value).__name__}, not text; fix the record"
    return None


def read_jsonl(path: Path, config: InputConfig) -> pl.DataFrame:
    records: list[dict] = []
    line_no = 0
    try:
        with _open_bytes(path) as fh:
            head = fh.peek(4)[:4] if hasattr(fh, "peek") else b""
            enc = utf_bom(head)
            if enc not in (None, "utf-8-sig"):  # a UTF-16/32 file: decode it whole, then read its lines
                lines: Iterator[bytes] = iter(fh.read().decode(enc, errors="replace").encode("utf-8").splitlines(True))
            else:
                lines = fh
            for line_no, raw in enumerate(lines, 1):
                if raw.strip():
                    records.append(parse_jsonl_line(raw, line_no, str(path), config))
    except (OSError, EOFError, zlib.error) as exc:  # includes a truncated .gz
        msg = f"{path}: the file ends early or is damaged after line {line_no} ({exc})"
        if config.on_error == "raise":
            raise InputError(f"{msg}; check that the file is complete, or pass --on-error skip to keep the "
                             f"records before the damage") from None
        records.append({"line": line_no + 1, "error": msg, "data": None})  # the damage itself is a dropped record
    return _record_rows(iter(records), str(path), config)


def missing_text_column(name: str, text_field: str, columns: list[str]) -> InputError:
    return InputError(
        f"{name}: no text column {text_field!r}; columns present: {', '.join(columns)}; "
        f"set the text column with --set input.text_field=NAME"
    )


def _table_rows(table: pl.DataFrame, name: str, config: InputConfig, decode_error: bool = False) -> pl.DataFrame:
    if config.text_field not in table.columns:
        raise missing_text_column(name, config.text_field, table.columns)
    if table.schema[config.text_field] not in (pl.String, pl.Null):
        raise InputError(
            f"{name}: column {config.text_field!r} is {table.schema[config.text_field]}, not text; "
            f"point input.text_field at a text column"
        )
    records = (
        {"line": i + 1, "data": rec, "error": None, "decode_error": decode_error}
        for i, rec in enumerate(table.iter_rows(named=True))
    )
    return _record_rows(records, name, config)


def read_parquet(path: Path, config: InputConfig) -> pl.DataFrame:
    try:
        table = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    return _table_rows(table, str(path), config)


def read_csv(source: Path | bytes, config: InputConfig, name: str) -> pl.DataFrame:
    data = source.read_bytes() if isinstance(source, Path) else source
    if not data.strip():
        return _record_rows(iter(()), name, config)  # an empty file holds no records
    text, bad = _decode(data)  # BOMs, UTF-16, Windows-1252 bytes: as every other reader (flagged per file)
    try:
        table = pl.read_csv(text.encode("utf-8"), infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{name}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    return _table_rows(table, name, config, decode_error=bad)


def read_txt(path: Path, config: InputConfig) -> pl.DataFrame:
    files = sorted(p for p in path.rglob("*.txt") if p.is_file()) if path.is_dir() else [path]
    if path.is_dir() and not files:
        raise InputError(f"{path}: the directory holds no .txt files; give a file or a directory of .txt files")
    records = []
    for i, f in enumerate(files):
        text, bad = _decode(f.read_bytes())
        doc_id = f.relative_to(path).as_posix() if path.is_dir() else f.stem
        records.append({"line": i + 1, "data": {config.id_field: doc_id, config.text_field: text}, "decode_error": bad})
    return _record_rows(iter(records), str(path), config)


def read_input(source: str | Path, config: InputConfig | None = None) -> tuple[pl.DataFrame, str]:
    """Read a corpus into the document frame; return it and the format read."""
    config = config or InputConfig()
    fmt = detect_format(source, config.format)
    if fmt == "stdin":
        data = sys.stdin.buffer.read()
        if data.lstrip()[:1] == b"{":
            return _record_rows(_jsonl_records(io.BytesIO(data), "<stdin>", config), "<stdin>", config), "jsonl"
        text, bad = _decode(data)
        rec = {"line": 1, "data": {config.id_field: "stdin", config.text_field: text}, "decode_error": bad}
        return _record_rows(iter([rec]), "<stdin>", config), "txt"
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory; check the input path")
    readers = {"jsonl": read_jsonl, "parquet": read_parquet, "txt": read_txt}
    if fmt == "csv":
        return read_csv(path, config, str(path)), fmt
    return readers[fmt](path, config), fmt


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------

def atomic_path(path: Path):
    """A temporary path beside ``path``; call ``os.replace(tmp, path)`` when the file is complete."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def write_atomic(path: Path, writer) -> None:
    """Run ``writer(tmp_path)`` and move the result into place only if it finished."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(path)
    try:
        writer(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_frame(frame: pl.DataFrame, path: Path, fmt: str) -> None:
    """Write a frame as JSONL, Parquet or CSV, atomically."""
    if fmt == "csv":
        nested = [c for c, t in frame.schema.items() if isinstance(t, pl.List | pl.Struct)]
        frame = frame.with_columns(
            pl.Series(c, [None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in frame[c].to_list()])
            for c in nested
        )

    def writer(tmp: Path) -> None:
        if fmt == "jsonl":
            frame.write_ndjson(tmp)
        elif fmt == "parquet":
            frame.write_parquet(tmp)
        else:
            frame.write_csv(tmp)

    write_atomic(path, writer)


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
