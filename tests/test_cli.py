from __future__ import annotations

import gzip
import json
import subprocess
import sys

import polars as pl
import pytest

from dedup.cli import build_parser, main

from .conftest import ROOT, SEED


def run(*args, stdin: bytes | None = None, cwd=None):
    return subprocess.run([sys.executable, "-m", "dedup", *map(str, args)], input=stdin, capture_output=True, cwd=cwd or ROOT)


def test_every_command_has_help(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == {"clean", "explain", "score"}
    for name in commands:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert "usage: dedup " + name in capsys.readouterr().out


def test_readme_commands_are_real():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install -e '.[dev]'" in readme
    assert f"dedup clean seeds/{SEED.name} -o out/" in readme
    assert "python -m pytest -q" in readme
    assert "python -m pytest -q" in (ROOT / ".ci" / "run").read_text()


def test_clean_seed_end_to_end(tmp_path):
    proc = run("clean", SEED, "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "annotations.parquet", "cleaned.jsonl", "dropped.jsonl", "dropped_passages.jsonl", "report.md", "stats.json",
    ]
    cleaned = [json.loads(line) for line in (out / "cleaned.jsonl").read_text().splitlines()]
    assert [c["id"] for c in cleaned] == [SEED.stem]
    ann = pl.read_parquet(out / "annotations.parquet")
    assert ann.height == 167
    assert (ann["action"] == "drop").sum() == 22
    raw = SEED.read_text(encoding="utf-8")
    row = ann.filter(pl.col("passage") == 43).row(0, named=True)
    assert "Volodymyrzelsky" in raw[row["start"] : row["end"]]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["pairs"]["caption_pairs"] == 22
    report = (out / "report.md").read_text()
    assert "22 caption pairs" in report
    assert "records: 1 kept, 0 dropped" in proc.stderr.decode()
    assert not list(out.glob(".*.tmp"))  # no temporary files left behind


def _jsonl(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_malformed_json_line_is_a_one_line_error(tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", ['{"id": "a", "text": "Fine text here."}', '{"id": "b", "text": "broken'])
    proc = run("clean", src, "-o", tmp_path / "out")
    assert proc.returncode == 1
    assert proc.stderr.decode() == (
        f"dedup error: {src} line 2: not valid JSON (Unterminated string starting at: column 21); "
        "fix the line, or pass --on-error skip to drop it and go on\n"
    )
    assert not (tmp_path / "out" / "cleaned.jsonl").exists()


def test_skip_keeps_account_of_every_record(tmp_path):
    lines = [
        '{"id": "a", "text": "A story about grain exports and the harvest in the spring."}',
        "not json",
        '{"id": "c", "text": "   \\u00a0 "}',
        '{"id": "d", "text": "A story about grain exports and the harvest in the spring."}',
        '[1, 2]',
        '{"id": "f", "body": "no text field"}',
    ]
    src = _jsonl(tmp_path / "in.jsonl", lines)
    proc = run("clean", src, "-o", tmp_path / "out", "--on-error", "skip", "-q")
    assert proc.returncode == 0, proc.stderr
    kept = pl.read_ndjson(tmp_path / "out" / "cleaned.jsonl")
    dropped = pl.read_ndjson(tmp_path / "out" / "dropped.jsonl")
    assert kept["id"].to_list() == ["a"]
    assert dict(zip(dropped["source_line"], dropped["drop_reason"])) == {
        2: "malformed", 3: "empty", 4: "exact_duplicate", 5: "malformed", 6: "malformed",
    }
    assert kept.height + dropped.height == len(lines)
    assert dropped.filter(pl.col("source_line") == 4)["duplicate_of"][0] == "a"


def test_missing_text_field_lists_fields(tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", ['{"id": "a", "body": "x", "date": "2021"}'])
    proc = run("clean", src, "-o", tmp_path / "out")
    assert proc.returncode == 1
    assert proc.stderr.decode() == (
        f"dedup error: {src} line 1: no text field 'text'; fields present: id, body, date; "
        "set the text field with --set input.text_field=NAME\n"
    )
    ok = run("clean", src, "-o", tmp_path / "out", "--set", "input.text_field=body", "-q")
    assert ok.returncode == 0, ok.stderr


def test_missing_file_and_unknown_format(tmp_path):
    proc = run("clean", tmp_path / "nope.jsonl", "-o", tmp_path / "out")
    assert proc.stderr.decode() == f"dedup error: {tmp_path / 'nope.jsonl'}: no such file or directory; check the input path\n"
    odd = tmp_path / "data.xyz"
    odd.write_text("x")
    proc = run("clean", odd, "-o", tmp_path / "out")
    assert proc.returncode == 1
    assert "cannot tell the format from the name" in proc.stderr.decode()
    assert proc.stderr.decode().count("\n") == 1


def test_bad_config_value_on_cli(tmp_path):
    proc = run("clean", SEED, "-o", tmp_path / "out", "--set", "cluster.keep=newest")
    assert proc.returncode == 1
    assert proc.stderr.decode() == "dedup error: cluster.keep = 'newest' is not allowed; use one of: first, earliest, longest\n"


def test_undecodable_bytes_are_read_as_windows_1252_and_flagged(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"id": "a", "text": "Caf\xe9 prices rose sharply in the capital this week."}\n')
    proc = run("clean", src, "-o", tmp_path / "out", "-q")
    assert proc.returncode == 0, proc.stderr
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["normalise"]["decode_errors"] == 1
    # a Latin-1 byte in a UTF-8 file is read as Windows-1252 (not replaced), and the record flagged
    assert pl.read_ndjson(tmp_path / "out" / "cleaned.jsonl")["text"][0] == "Café prices rose sharply in the capital this week."
    assert pl.read_parquet(tmp_path / "out" / "annotations.parquet")["decode_error"].to_list() == [True]


def test_gzip_csv_parquet_txt_dir_and_stdin(tmp_path):
    texts = ["Wheat exports rose ten pct in March, the ministry said on Friday.", "Oil prices fell for a third day as stocks grew."]
    gz = tmp_path / "in.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as fh:
        for i, t in enumerate(texts):
            fh.write(json.dumps({"id": f"g{i}", "text": t}) + "\n")
    csv = tmp_path / "in.csv"
    pl.DataFrame({"id": ["c0", "c1"], "text": ['He said, "yes,\nreally."', texts[1]]}).write_csv(csv)
    pq = tmp_path / "in.parquet"
    pl.DataFrame({"text": texts}).write_parquet(pq)
    folder = tmp_path / "docs"
    folder.mkdir()
    for i, t in enumerate(texts):
        (folder / f"doc{i}.txt").write_text(t)
    for src, out_name, reader, ids in [
        (gz, "cleaned.jsonl", pl.read_ndjson, ["g0", "g1"]),
        (csv, "cleaned.csv", pl.read_csv, ["c0", "c1"]),
        (pq, "cleaned.parquet", pl.read_parquet, ["in-0", "in-1"]),
        (folder, "cleaned.jsonl", pl.read_ndjson, ["doc0.txt", "doc1.txt"]),
    ]:
        out = tmp_path / f"out-{src.name}"
        proc = run("clean", src, "-o", out, "-q")
        assert proc.returncode == 0, proc.stderr
        got = reader(out / out_name)
        assert got["id"].to_list() == ids
    assert pl.read_csv(tmp_path / "out-in.csv" / "cleaned.csv")["text"][0] == 'He said, "yes,\nreally."'
    proc = run("clean", "-", "-o", tmp_path / "out-stdin", "-q", stdin=SEED.read_bytes())
    assert proc.returncode == 0, proc.stderr
    assert pl.read_ndjson(tmp_path / "out-stdin" / "cleaned.jsonl")["id"].to_list() == ["stdin"]


def test_explain_text_and_doc():
    proc = run("explain", "--text", "They are â€˜off-the-scaleâ€™\u00a0today")
    assert proc.returncode == 0
    out = proc.stdout.decode()
    assert "normalised: 'They are ‘off-the-scale’ today'" in out
    assert "ftfy (decode_inconsistent_utf8): raw 9-12 'â€˜' -> '‘'" in out
    proc = run("explain", SEED, "--doc", SEED.stem, "--passage", "109")
    out = proc.stdout.decode()
    assert proc.returncode == 0, proc.stderr
    assert "caption rewrite; partner [108]" in out
    assert "drop (caption_rewrite)" in out
    # the garble verdict, its reasons with raw spans, and the pair side by side with the spans marked
    assert "garble: garbled" in out
    assert "entity_changed [18533-18541, original 18421-18429] (severity 0.80): 'Minister' became 'Ministry'" in out
    assert "original [108]" in out and "this passage [109]" in out
    assert "Foreign [[Minister]]" in out and "Foreign [[Ministry]]" in out
    proc = run("explain", SEED, "--doc", "nope")
    assert proc.returncode == 1
    assert proc.stderr.decode().startswith("dedup error: ")
