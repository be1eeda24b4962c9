from __future__ import annotations

import polars as pl

import dedup
from dedup import schema as S


def test_python_api_on_a_polars_frame():
    frame = pl.DataFrame(
        {
            "uid": ["x", "y", "z", "w"],
            "body": [
                "Ukraineâ€™s troops held guns in Kharkiv on Monday, the ministry said today.",
                "",
                "Ukraineâ€™s troops held guns in Kharkiv on Monday, the ministry said today.",
                "An unrelated story about wheat exports and grain prices in the spring.",
            ],
            "source": ["a", "b", "c", "d"],
        }
    )
    cfg = dedup.load_config(None, ["input.id_field=uid", "input.text_field=body"])
    result = dedup.clean(frame, cfg)
    assert result.kept[S.DOC_ID].to_list() == ["x", "w"]
    assert dict(zip(result.dropped[S.DOC_ID], result.dropped[S.DROP_REASON])) == {"y": "empty", "z": "exact_duplicate"}
    records = result.cleaned_records()
    assert records.columns == ["uid", "body", "source"]
    assert records["body"][0].startswith("Ukraine’s troops")


def test_accounting_and_offsets_on_reuters(reuters_result):
    r = reuters_result
    assert r.kept.height + r.dropped.height == r.documents.height == 10051
    assert r.stats["result"]["dropped_by_reason"] == {
        "exact_duplicate": r.stats["cluster"]["exact_duplicates"],
        "near_duplicate": r.stats["cluster"]["near_duplicates"],
    }
    raw = dict(zip(r.documents[S.ROW], r.documents[S.TEXT]))
    sample = r.passages.sample(n=2000, seed=1)
    for row, start, end, text in sample.select(S.ROW, S.P_START, S.P_END, S.P_TEXT).iter_rows():
        assert dedup.normalise_text(raw[row][start:end]).text == text
    # SGML entities and the end-of-text mark are repaired
    assert not r.kept[S.TEXT_CLEAN].str.contains("&lt;|&#3;").any()


def test_stage_functions_drop_no_rows(seed_result):
    docs = seed_result.documents.select(S.ROW, S.DOC_ID, S.TEXT)
    assert dedup.normalise(docs).height == docs.height


def test_near_copies_off_leaves_the_dropped_copies_unscored_and_all_else_alike(reuters_result, tmp_path):
    """``garble.near_copies = false`` on Reuters dev: its 169 near duplicates are "not scored" in
    ``dropped`` (scored, some garbled, in the default run), and every other output is the same."""
    from dedup.config import load_config

    from .conftest import REUTERS, need, without_seconds

    on = reuters_result
    off = dedup.clean(need(REUTERS), load_config(None, ["garble.near_copies=false"]))
    near = (pl.col(S.DUP_KIND) == "near").fill_null(False)
    scored, unscored = on.documents.filter(near), off.documents.filter(near)
    assert unscored.height == scored.height == 169
    assert (scored[S.G_LABEL] != "not scored").all() and (scored[S.G_LABEL] == "garbled").any()
    assert (unscored[S.G_LABEL] == "not scored").all() and unscored[S.G_SCORE].is_null().all()
    assert (unscored[S.G_REASONS].list.len() == 0).all()
    garble = [S.G_SCORE, S.G_LABEL, S.G_REASONS]
    assert on.documents.filter(~near).equals(off.documents.filter(~near))
    assert on.documents.drop(garble).equals(off.documents.drop(garble))
    assert on.passages.equals(off.passages)
    assert "near_duplicates_garbled" in on.stats["garble"] and "near_duplicates_garbled" not in off.stats["garble"]
    off.write(tmp_path / "off")
    report = without_seconds((tmp_path / "off" / "report.md").read_text(encoding="utf-8"))
    assert "Near-duplicate documents were not scored against the copy kept (`garble.near_copies = false`)" in report
