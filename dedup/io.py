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


DAMAGE = (OSError, EOFError, zlib.error)  # what reading a file raises when it ends early or is damaged (.gz too)


def damaged_gzip(path: Path) -> bool:
    """Whether a ``.gz`` file (as :func:`_open_bytes` tells one) ends early or is damaged, found by
    reading it through once (zlib's speed)."""
    if path.suffix.lower() != ".gz":
        return False
    try:
        with _open_bytes(path) as fh:
            while fh.read(1 << 24):
                pass
    except DAMAGE:
        return True
    return False


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


def _jsonl_stream(path: Path, config: InputConfig) -> Iterator[dict]:
    """The records of a JSONL file (.gz looked through) one at a time, each with its line number. A
    file that ends early or is damaged yields the records before the damage, then one malformed record
    naming where it stopped (or, under ``on_error = "raise"``, raises)."""
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
                    yield parse_jsonl_line(raw, line_no, str(path), config)
    except DAMAGE as exc:  # includes a truncated .gz
        msg = f"{path}: the file ends early or is damaged after line {line_no} ({exc})"
        if config.on_error == "raise":
            raise InputError(f"{msg}; check that the file is complete, or pass --on-error skip to keep the "
                             f"records before the damage") from None
        yield {"line": line_no + 1, "error": msg, "data": None}  # the damage itself is a dropped record


def missing_text_column(name: str, text_field: str, columns: list[str]) -> InputError:
    return InputError(
        f"{name}: no text column {text_field!r}; columns present: {', '.join(columns)}; "
        f"set the text column with --set input.text_field=NAME"
    )


def _check_table(schema, name: str, config: InputConfig) -> None:
    if config.text_field not in schema:
        raise missing_text_column(name, config.text_field, list(schema))
    if schema[config.text_field] not in (pl.String, pl.Null):
        raise InputError(
            f"{name}: column {config.text_field!r} is {schema[config.text_field]}, not text; "
            f"point input.text_field at a text column"
        )


def _parquet_stream(path: Path, config: InputConfig, chunk: int) -> Iterator[dict]:
    import pyarrow.parquet as pq

    try:
        # buffered, not pre-buffered: by default pyarrow reads a whole column chunk of a row group
        # (ranges cached ahead) before the first batch of it, so a writer's large row groups, not the
        # batch size, set the memory a streamed read takes (pyarrow's reader alone, on the 1M-document
        # benchmark corpus, row groups of 239 MB of text, 83 MB compressed: about 320 MB above its
        # base by default, about 115 MB buffered)
        reader = pq.ParquetFile(path, buffer_size=_PARQUET_BUFFER, pre_buffer=False)
        _check_table(pl.from_arrow(reader.schema_arrow.empty_table()).schema, str(path), config)
        first = 0
        for batch in reader.iter_batches(batch_size=chunk):
            table = pl.from_arrow(batch)
            for i, rec in enumerate(table.iter_rows(named=True)):
                yield {"row": first + i, "line": first + i + 1, "data": rec, "error": None}
            first += table.height
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    except Exception as exc:  # pyarrow's own errors (ArrowInvalid) derive from ValueError
        if type(exc).__module__.startswith("pyarrow"):
            raise InputError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
        raise


_CHUNK_BYTES = 1 << 24
_PARQUET_BUFFER = 1 << 20  # bytes read at a time from a column chunk of a streamed Parquet file


def _utf8_copy(path: Path) -> tuple[Path | None, bool]:
    """A CSV file's bytes as UTF-8 without a BOM, for the CSV parser: None when the file already is
    (it is read in place), else a temporary UTF-8 copy. Also whether some bytes were not valid in
    the file's encoding (a BOM names it; else UTF-8, other bytes read as Windows-1252, as
    :func:`_decode` does). The file is read in chunks, so it need not fit in memory."""
    with open(path, "rb") as fh:
        enc = utf_bom(fh.read(4))
    if enc is None:
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            with open(path, "rb") as fh:
                while chunk := fh.read(_CHUNK_BYTES):
                    decoder.decode(chunk)
                decoder.decode(b"", final=True)
            return None, False
        except UnicodeDecodeError:
            enc = "utf-8"
    bad = False
    for errors in ("strict", "dedup_cp1252" if enc == "utf-8" else "replace"):
        fd, tmp = tempfile.mkstemp(prefix="dedup-csv-", suffix=".csv")
        try:
            decoder = codecs.getincrementaldecoder(enc)(errors=errors)
            with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
                while chunk := src.read(_CHUNK_BYTES):
                    dst.write(decoder.decode(chunk).encode("utf-8"))
                dst.write(decoder.decode(b"", final=True).encode("utf-8"))
            return Path(tmp), bad
        except UnicodeDecodeError:
            Path(tmp).unlink(missing_ok=True)
            bad = True
    raise AssertionError("unreachable: the last pass replaces what it cannot decode")


def _csv_stream(path: Path, config: InputConfig, chunk: int) -> Iterator[dict]:
    if not _has_content(path):
        return  # an empty file holds no records
    copy, bad = _utf8_copy(path)
    try:
        lazy = pl.scan_csv(copy or path, infer_schema=False)
        first = 0
        try:
            _check_table(lazy.collect_schema(), str(path), config)
            batches = lazy.collect_batches(chunk_size=chunk)
            for table in batches:
                for i, rec in enumerate(table.iter_rows(named=True)):
                    yield {"row": first + i, "line": first + i + 1, "data": rec, "error": None, "decode_error": bad}
                first += table.height
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise InputError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    finally:
        if copy is not None:
            copy.unlink(missing_ok=True)


def _has_content(path: Path) -> bool:
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            if chunk.strip():
                return True
    return False


def _txt_stream(path: Path, config: InputConfig) -> Iterator[dict]:
    files = sorted(p for p in path.rglob("*.txt") if p.is_file()) if path.is_dir() else [path]
    if path.is_dir() and not files:
        raise InputError(f"{path}: the directory holds no .txt files; give a file or a directory of .txt files")
    for i, f in enumerate(files):
        text, bad = _decode(f.read_bytes())
        doc_id = f.relative_to(path).as_posix() if path.is_dir() else f.stem
        yield {"line": i + 1, "data": {config.id_field: doc_id, config.text_field: text}, "decode_error": bad}


def _stdin_records(config: InputConfig) -> tuple[Iterator[dict], str]:
    data = sys.stdin.buffer.read()
    if data.lstrip()[:1] == b"{":
        return _jsonl_records(io.BytesIO(data), "<stdin>", config), "jsonl"
    text, bad = _decode(data)
    return iter([{"line": 1, "data": {config.id_field: "stdin", config.text_field: text}, "decode_error": bad}]), "txt"


def _batched(records: Iterator[dict], name: str, config: InputConfig, documents: int, chars: int) -> Iterator[pl.DataFrame]:
    """Records grouped into document frames of at most ``documents`` records and about ``chars``
    characters of text (a longer record is a batch of its own); rows count over the whole input."""
    batch: list[dict] = []
    size = 0
    for k, rec in enumerate(records):
        rec.setdefault("row", k)
        text = (rec.get("data") or {}).get(config.text_field)
        n = len(text) if isinstance(text, str) else 0
        if batch and (len(batch) >= documents or size + n > chars):
            yield _record_rows(iter(batch), name, config)
            batch, size = [], 0
        batch.append(rec)
        size += n
    if batch:
        yield _record_rows(iter(batch), name, config)


UNBOUNDED = 10**18


def iter_input(source: str | Path, config: InputConfig | None = None, *, batch_documents: int = UNBOUNDED,
               batch_chars: int = UNBOUNDED) -> tuple[str, Iterator[pl.DataFrame]]:
    """The format read and the corpus as document frames of bounded size, rows numbered over the
    whole input. JSONL (.gz), Parquet, CSV and folders of .txt files are read as they are consumed,
    so only one batch is in memory; stdin is read whole. Each batch infers the types of the other
    fields of its own records."""
    config = config or InputConfig()
    fmt = detect_format(source, config.format)
    chunk = max(1, min(batch_documents, 10_000))
    if fmt == "stdin":
        records, fmt = _stdin_records(config)
        name = "<stdin>"
    else:
        path = Path(source)
        if not path.exists():
            raise InputError(f"{path}: no such file or directory; check the input path")
        name = str(path)
        records = {
            "jsonl": lambda: _jsonl_stream(path, config),
            "parquet": lambda: _parquet_stream(path, config, chunk),
            "csv": lambda: _csv_stream(path, config, chunk),
            "txt": lambda: _txt_stream(path, config),
        }[fmt]()
    return fmt, _batched(records, name, config, batch_documents, batch_chars)


def read_input(source: str | Path, config: InputConfig | None = None) -> tuple[pl.DataFrame, str]:
    """Read a corpus into the document frame; return it and the format read."""
    config = config or InputConfig()
    fmt, batches = iter_input(source, config)
    frames = list(batches)
    return (frames[0] if frames else empty_documents(source, config)), fmt


def empty_documents(source: str | Path, config: InputConfig) -> pl.DataFrame:
    """The document frame of an input that holds no records."""
    return _record_rows(iter(()), "<stdin>" if str(source) == "-" else str(source), config)


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


def _csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested columns (lists, structs) as JSON text: CSV has no nested values."""
    nested = [c for c, t in frame.schema.items() if isinstance(t, pl.List | pl.Struct)]
    return frame.with_columns(
        pl.Series(c, [None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in frame[c].to_list()])
        for c in nested
    )


GROUP_BYTES = 10**6


class FrameWriter:
    """One output file written a frame at a time, in order; it appears under its name only when
    :meth:`close` finishes (temporary name, then rename). JSONL and CSV are appended as they come;
    Parquet frames are kept as parts beside the target and joined under one schema wide enough for
    all of them (a column that is null in one batch and text in another is text)."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path, self.fmt = path, fmt
        path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = atomic_path(path)
        self.parts: list[Path] = []
        self.fh = open(self.tmp, "wb") if fmt in ("jsonl", "csv") else None

    def write(self, frame: pl.DataFrame) -> None:
        if self.fmt == "jsonl":
            frame.write_ndjson(self.fh)
        elif self.fmt == "csv":
            _csv_ready(frame).write_csv(self.fh, include_header=self.fh.tell() == 0)
        else:
            part = self.tmp.with_name(f"{self.tmp.name}.{len(self.parts):06d}")
            frame.write_parquet(part)
            self.parts.append(part)

    def close(self) -> None:
        try:
            if self.fh is not None:
                self.fh.close()
            elif len(self.parts) == 1:
                os.replace(self.parts.pop(), self.tmp)
            else:
                self._join_parts()
            os.replace(self.tmp, self.path)
        finally:
            self.abort()

    def abort(self) -> None:
        if self.fh is not None and not self.fh.closed:
            self.fh.close()
        for part in self.parts:
            part.unlink(missing_ok=True)
        self.tmp.unlink(missing_ok=True)

    def _join_parts(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.parts:
            pl.DataFrame().write_parquet(self.tmp)
            return
        # one schema wide enough for every part (a column null in one part and text in another is
        # text), then the parts copied a record batch at a time
        schema = pa.unify_schemas([pq.read_schema(p) for p in self.parts], promote_options="permissive")
        # parts are gathered into row groups of about GROUP_BYTES: the writer keeps metadata for
        # every write, so writing thousands of small parts one by one would hold memory per part
        held: list = []
        with pq.ParquetWriter(self.tmp, schema) as writer:
            for part in self.parts:
                held.append(pl.read_parquet(part).to_arrow().cast(schema))
                if sum(t.nbytes for t in held) >= GROUP_BYTES:
                    writer.write_table(pa.concat_tables(held))
                    held = []
            if held:
                writer.write_table(pa.concat_tables(held))


def write_frame(frame: pl.DataFrame, path: Path, fmt: str) -> None:
    """Write a frame as JSONL, Parquet or CSV, atomically."""
    writer = FrameWriter(path, fmt)
    try:
        writer.write(frame)
        writer.close()
    except BaseException:
        writer.abort()
        raise


def write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
