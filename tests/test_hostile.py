"""Hostile input: every case ends kept, dropped with a reason, or as one `dedup error:` line naming the
file and record; no traceback reaches the user, and no record is lost."""

from __future__ import annotations

import codecs
import gzip
import html
import json
from pathlib import Path

import polars as pl
import pytest

from dedup import clean, load_config
from dedup.errors import InputError

from .conftest import SHARED, need
from .test_cli import run

SKIP = load_config(None, ["input.on_error=skip"])


def _jsonl(*records) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in records)


# name -> (file name, bytes); the outcomes are asserted case by case below
CASES: dict[str, tuple[str, bytes]] = {
    "truncated_line": ("a.jsonl", _jsonl({"id": "a", "text": "Wheat rose."}) + b'{"id": "b", "text": "cut he'),
    "not_an_object": ("a.jsonl", _jsonl({"id": "a", "text": "Wheat rose."}) + b'["a", "list"]\n'),
    "latin1_in_utf8": ("a.jsonl", '{"id": "a", "text": "Caf\u00e9 cr\u00e8me prices rose."}\n'.encode("latin-1")),
    "cp1252_in_utf8": ("a.jsonl", '{"id": "a", "text": "\u201cQuoted\u201d \u2013 a dash."}\n'.encode("cp1252")),
    "utf16_bom": ("a.jsonl", codecs.BOM_UTF16_LE + '{"id": "a", "text": "Hello in UTF-16."}\n'.encode("utf-16-le")),
    "mixed_encodings": ("a.jsonl", '{"id": "a", "text": "caf\u00e9 one"}\n'.encode("latin-1") + _jsonl({"id": "b", "text": "café two"})),
    "nul_and_controls": ("a.jsonl", _jsonl({"id": "a", "text": "nul\u0000here, a \u0007bell, \u001b[31mred\u001b[0m and more."})),
    "empty_file": ("a.jsonl", b""),
    "blank_lines": ("a.jsonl", b"\n \n\t\n"),
    "empty_and_one_char": ("a.jsonl", _jsonl({"id": "a", "text": ""}, {"id": "b", "text": "x"}, {"id": "c", "text": None},
                                            {"id": "d", "text": "   "})),
    "text_not_a_string": ("a.jsonl", _jsonl({"id": "a", "text": 42}, {"id": "b", "text": "fine text"})),
    "duplicate_ids": ("a.jsonl", _jsonl({"id": "a", "text": "First story about talks."}, {"id": "a", "text": "Another story on markets."})),
    "csv_newlines_quotes": ("a.csv", 'id,text\n1,"He said ""no"".\n\nA new paragraph, with a comma."\n2,plain\n'.encode()),
    "csv_empty": ("a.csv", b""),
    "csv_header_only": ("a.csv", b"id,text\n"),
    "csv_cp1252": ("a.csv", 'id,text\n1,"Caf\u00e9 \u2013 cr\u00e8me"\n'.encode("cp1252")),
    "txt_utf16": ("a.txt", codecs.BOM_UTF16_BE + "A text file in UTF-16 big-endian.".encode("utf-16-be")),
}


def _write(tmp_path: Path, case: str) -> Path:
    name, data = CASES[case]
    path = tmp_path / case / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _outcome(path: Path, config=SKIP):
    r = clean(path, config)
    res = r.stats["result"]
    assert res["kept"] + res["dropped"] == r.stats["input"]["records"]
    return r


@pytest.mark.parametrize("case", sorted(CASES))
def test_cli_never_shows_a_traceback(tmp_path, case):
    path = _write(tmp_path, case)
    for mode in ("raise", "skip"):
        proc = run("clean", path, "-o", tmp_path / f"out-{mode}", "-q", "--on-error", mode)
        err = proc.stderr.decode()
        assert "Traceback" not in err
        if proc.returncode:
            assert proc.returncode == 1 and err.startswith("dedup error: ") and err.count("\n") == 1, err
            assert str(path) in err  # names the file
        else:
            assert (tmp_path / f"out-{mode}" / "stats.json").exists()
    # with skip, no case stops the run
    assert run("clean", path, "-o", tmp_path / "out-skip2", "-q", "--on-error", "skip").returncode == 0


def test_bad_lines_are_dropped_with_their_line(tmp_path):
    r = _outcome(_write(tmp_path, "truncated_line"))
    d = r.dropped_records()
    assert d["drop_reason"].to_list() == ["malformed"] and d["source_line"].to_list() == [2]
    assert "line 2: not valid JSON" in d["error"][0]
    r = _outcome(_write(tmp_path, "not_an_object"))
    assert "line 2: a record must be a JSON object, got list" in r.dropped_records()["error"][0]
    with pytest.raises(InputError, match=r"a\.jsonl line 2: not valid JSON .*; fix the line, or pass --on-error skip"):
        clean(_write(tmp_path, "truncated_line"))


def test_truncated_gzip_keeps_what_came_before(tmp_path):
    data = gzip.compress(_jsonl(*({"id": str(i), "text": f"Story number {i} about wheat."} for i in range(300))))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.jsonl\.gz: the file ends early or is damaged after line \d+ .*--on-error skip"):
        clean(path)
    r = _outcome(path)
    d = r.dropped_records()
    assert r.stats["result"]["kept"] > 50 and d.height == 1 and d["drop_reason"][0] == "malformed"
    assert d["source_line"][0] == r.stats["result"]["kept"] + 1  # the damage is the record after the last read


def test_legacy_bytes_are_read_as_windows_1252_and_flagged(tmp_path):
    for case, text in (("latin1_in_utf8", "Café crème prices rose."), ("cp1252_in_utf8", "“Quoted” – a dash."), ("csv_cp1252", "Café – crème")):
        r = _outcome(_write(tmp_path, case))
        assert r.kept[S_TEXT_CLEAN][0] == text
        assert r.documents["decode_error"].to_list() == [True], case
    r = _outcome(_write(tmp_path, "mixed_encodings"))
    assert r.documents["decode_error"].to_list() == [True, False]
    assert r.documents["text"].to_list() == ["café one", "café two"]


S_TEXT_CLEAN = "text_clean"


def test_utf16_files(tmp_path):
    assert _outcome(_write(tmp_path, "utf16_bom")).kept[S_TEXT_CLEAN].to_list() == ["Hello in UTF-16."]
    assert _outcome(_write(tmp_path, "txt_utf16")).kept[S_TEXT_CLEAN].to_list() == ["A text file in UTF-16 big-endian."]


def test_control_characters_leave_and_offsets_hold(tmp_path):
    r = _outcome(_write(tmp_path, "nul_and_controls"))
    cleaned = r.kept[S_TEXT_CLEAN][0]
    assert "\u0000" not in cleaned and "\u0007" not in cleaned and "\u001b" not in cleaned
    raw = r.documents["text"][0]
    for start, end, text in r.passages.select("start", "end", "passage_text").iter_rows():
        assert raw[start:end].replace("\u0000", "").replace("\u0007", "").startswith(text[:3])


def test_empty_inputs_and_tiny_documents(tmp_path):
    for case in ("empty_file", "blank_lines", "csv_empty", "csv_header_only"):
        r = _outcome(_write(tmp_path, case))
        assert r.stats["input"]["records"] == 0, case
    r = _outcome(_write(tmp_path, "empty_and_one_char"))
    assert dict(zip(r.documents["doc_id"], r.documents["drop_reason"])) == {"a": "empty", "b": None, "c": "empty", "d": "empty"}
    r = _outcome(_write(tmp_path, "text_not_a_string"))
    assert r.dropped_records()["error"][0].endswith("field 'text' is int, not text; fix the record")


def test_duplicate_ids_are_reported(tmp_path):
    r = _outcome(_write(tmp_path, "duplicate_ids"))
    assert r.stats["result"]["kept"] == 2
    assert r.stats["input"]["duplicate_ids"] == {"ids": 1, "records": 2, "examples": [{"id": "a", "lines": [1, 2]}]}
    assert "1 ids are given to more than one record" in r.report()


def test_csv_embedded_newlines_and_quotes(tmp_path):
    r = _outcome(_write(tmp_path, "csv_newlines_quotes"))
    assert r.documents["text"][0] == 'He said "no".\n\nA new paragraph, with a comma.'
    assert r.passages.filter(pl.col("doc_id") == "1").height == 2


def test_parquet_text_column_missing_null_or_not_text(tmp_path):
    p = tmp_path / "p.parquet"
    pl.DataFrame({"id": ["a"], "body": ["x"]}).write_parquet(p)
    with pytest.raises(InputError, match=r"p\.parquet: no text column 'text'; columns present: id, body"):
        clean(p)
    pl.DataFrame({"id": ["a", "b"], "text": [None, "Some text here."]}, schema={"id": pl.String, "text": pl.String}).write_parquet(p)
    r = _outcome(p)
    assert r.documents["drop_reason"].to_list() == ["empty", None]
    pl.DataFrame({"id": ["a"], "text": [3]}).write_parquet(p)
    with pytest.raises(InputError, match=r"column 'text' is Int64, not text"):
        clean(p)


def test_every_naughty_string(tmp_path):
    """Each line of the Big List of Naughty Strings as a record, and all of them as one document."""
    strings = json.loads(need(SHARED / "encoding" / "blns" / "blns.json").read_text(encoding="utf-8"))
    path = tmp_path / "blns.jsonl"
    path.write_bytes(_jsonl(*({"id": str(i), "text": s} for i, s in enumerate(strings)), {"id": "all", "text": "\n\n".join(strings)}))
    r = _outcome(path)
    assert r.stats["input"]["records"] == len(strings) + 1
    raw = dict(zip(r.documents["doc_id"], r.documents["text"]))
    for doc_id, start, end, text in r.passages.select("doc_id", "start", "end", "passage_text").iter_rows():
        assert 0 <= start <= end <= len(raw[doc_id])
    report = r.report()
    assert "<script>" not in report  # scraped text is escaped in the report


def test_legacy_encoding_samples(tmp_path):
    """charset_normalizer's samples (cp1251, big5, iso-8859-x, a BOM...) as a folder of .txt files:
    every file is read, UTF-8 ones exactly, the rest as Windows-1252 and flagged."""
    src = need(SHARED / "encoding" / "charset_normalizer_data")
    folder = tmp_path / "samples"
    folder.mkdir()
    files = sorted(src.glob("*.txt"))
    for f in files:
        (folder / f.name).write_bytes(f.read_bytes())
    r = _outcome(folder)
    assert r.stats["input"]["records"] == len(files) >= 15
    flags = dict(zip(r.documents["doc_id"], r.documents["decode_error"]))
    for f in files:
        data = f.read_bytes()
        try:
            data.decode("utf-8")
            utf8 = True
        except UnicodeDecodeError:
            utf8 = False
        assert flags[f.name] is (not utf8), f.name
    # every file is kept or dropped with a reason; the Latin-1 French sample, read as Windows-1252,
    # is the very text of the UTF-8 one, so the two are found as exact copies
    assert set(r.stats["result"]["dropped_by_reason"]) <= {"exact_duplicate"}
    dup = dict(zip(r.documents["doc_id"], r.documents["duplicate_of"]))
    assert {dup["sample-french.txt"], dup["sample-french-1.txt"]} == {None, "sample-french-1.txt"}
    assert flags["sample-french-1.txt"] and not flags["sample-french.txt"]


def test_one_huge_document(tmp_path):
    """One 5 MB "article" (Reuters stories glued together, boilerplate lines repeated by the
    thousand): kept, every passage mapped back to the raw text. benchmarks/hostile.py runs 50 MB."""
    import gzip as gz

    texts = []
    size = 0
    with gz.open(need(SHARED / "reuters" / "dev.jsonl.gz"), "rt", encoding="utf-8") as fh:
        for line in fh:
            t = json.loads(line)["text"]
            texts.append(t)
            size += len(t) + 2
            if size > 5_000_000:
                break
    path = tmp_path / "huge.jsonl"
    path.write_text(json.dumps({"id": "huge", "text": "\n\n".join(texts)}) + "\n", encoding="utf-8")
    r = _outcome(path)
    assert r.stats["result"] == {"kept": 1, "dropped": 0, "dropped_by_reason": {}}
    raw = r.documents["text"][0]
    p = r.passages
    assert p.height > 5000 and p["start"].max() < len(raw)
    sample = p.filter(pl.col("action") == "keep").head(200)
    for start, end, text in sample.select("start", "end", "passage_text").iter_rows():
        assert html.unescape(raw[start:end]).split()[:3] == text.split()[:3]  # the raw span, entities and all
    assert (p["role"] == "verbatim").sum() > 100  # the repeated lines and re-sent stories are found as such
