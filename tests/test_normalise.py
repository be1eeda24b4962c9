from __future__ import annotations

import json

import pytest
from ftfy.fixes import uncurl_quotes
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.config import NormaliseConfig
from dedup.normalise import FIXERS, fix_quotes, map_offsets, map_offsets_list, normalise_text

from .conftest import DATA, FTFY_CASES, need

# ftfy's cases expect its uncurl_quotes step; we keep curly quotes on purpose (they are correct
# text), so the comparison forgives quote curling and nothing else. The whitespace fixer turns
# non-breaking spaces into spaces by design, so ftfy's cases run without it.
FTFY_ONLY = NormaliseConfig(fixers=("ftfy", "quotes"))
# Known failures of ftfy that our configuration (uncurl_quotes off) happens to fix.
PASSING_KNOWN_FAILURES = {"Misleading mix-up in Spanish"}


def _cases(name: str) -> list[dict]:
    path = FTFY_CASES / f"{name}.json"
    if not path.exists():
        return []
    return json.loads(path.read_text(encoding="utf-8"))


def _params(name: str):
    out = []
    for case in _cases(name):
        marks = []
        if case["expect"] == "fail" and case["label"] not in PASSING_KNOWN_FAILURES:
            marks.append(pytest.mark.xfail(strict=True, reason=case.get("comment", "known ftfy failure")))
        out.append(pytest.param(case, id=case["label"], marks=marks))
    return out


@pytest.mark.parametrize("name", ["in-the-wild", "synthetic", "negative", "known-failures", "language-names"])
def test_ftfy_case_files_present(name):
    need(FTFY_CASES / f"{name}.json")
    assert _cases(name), f"{name}.json holds no cases"


@pytest.mark.parametrize(
    "case",
    _params("in-the-wild") + _params("synthetic") + _params("negative") + _params("language-names") + _params("known-failures"),
)
def test_ftfy_cases(case):
    got = normalise_text(case["original"], FTFY_ONLY).text
    assert uncurl_quotes(got) == uncurl_quotes(case["fixed"])


@pytest.mark.parametrize("case", _params("negative"))
def test_ftfy_negatives_with_every_fixer(case):
    """Full normalisation of a negative gives ftfy's answer with our whitespace policy on top."""
    got = normalise_text(case["original"]).text
    assert uncurl_quotes(got) == uncurl_quotes(FIXERS["whitespace"](case["fixed"]))


def _quote_params():
    cases = json.loads((DATA / "quote_cases.json").read_text(encoding="utf-8"))
    return [
        pytest.param(c, id=c["label"], marks=[pytest.mark.xfail(strict=True, reason=c["comment"])] if c["expect"] == "fail" else [])
        for c in cases
    ]


@pytest.mark.parametrize("case", _quote_params())
def test_quote_cases(case):
    assert fix_quotes(case["original"]) == case["fixed"]
    assert fix_quotes(case["fixed"]) == case["fixed"]  # repaired text stays as it is


def test_seed_changes_and_offsets(seed_text):
    r = normalise_text(seed_text)
    fixers = {c["fixer"] for c in r.changes}
    assert fixers == {"quotes", "whitespace"}
    assert "\u00a0" not in r.text
    assert "imposing ‘substantial’ economic" in r.text
    assert "had ‘made it very clear to the Kremlin’ that" in r.text
    assert "sanctions from Hell arrive" in r.text
    # correct apostrophes and pairs survive
    for keep in ("Ukraine’s", "don’t", "‘joint action and coordinated effort’", "“off the scale”"):
        assert keep in r.text
    # every change's raw span holds exactly what that fixer saw (each fixer here acts on raw text)
    for c in r.changes:
        assert seed_text[c["raw_start"] : c["raw_end"]] == c["before"], c


def test_idempotent_on_seed(seed_text):
    once = normalise_text(seed_text).text
    assert normalise_text(once).text == once


def test_a_fixer_is_not_asked_again_about_text_it_left_alone(monkeypatch):
    # ftfy changes the text in the first pass; the second pass asks ftfy about its own output, but
    # not the quotes and whitespace fixers, which were given that very text already and kept it
    calls = []
    for name in ("quotes", "whitespace"):
        monkeypatch.setitem(FIXERS, name, lambda text, f=FIXERS[name], name=name: calls.append(name) or f(text))
    r = normalise_text("AT&amp;T said on Monday it would not comment.")
    assert r.text == "AT&T said on Monday it would not comment." and r.fixes == ["ftfy"]
    assert calls == ["quotes", "whitespace"]
    calls.clear()
    r = normalise_text("Kyiv\u00a0 said “no” .")  # the last fixer changes it: every fixer reads its result
    assert r.text == "Kyiv said “no” ." and calls == ["quotes", "whitespace", "quotes", "whitespace"]


def test_mojibake_change_maps_to_raw():
    raw = "Tensions are rising â€˜off-the-scaleâ€™ in Europeâ€™s east."
    r = normalise_text(raw)
    assert r.text == "Tensions are rising ‘off-the-scale’ in Europe’s east."
    start = r.text.index("Europe")
    end = start + len("Europe’s")
    rs, re_ = r.to_raw([start, end]).tolist()
    assert raw[rs:re_] == "Europeâ€™s"


def test_long_unit_is_cut_and_still_maps():
    raw = ("word\u00a0 " * 40_000) + "end"
    r = normalise_text(raw, NormaliseConfig(max_unit_chars=1000))
    assert r.text == ("word " * 40_000) + "end"
    pos = r.text.index("end")
    assert raw[r.to_raw(pos) :] == "end"


text_strategy = st.text(
    alphabet=st.sampled_from(list("abcXYZ 019.,\n\t’‘“”\"'&;\u00a0\u200bÃ©â€™")), max_size=120
)


@settings(max_examples=300, deadline=None)
@given(text_strategy)
def test_property_never_raises_idempotent_and_maps_monotonically(raw):
    r = normalise_text(raw)
    assert normalise_text(r.text).text == r.text
    positions = list(range(len(r.text) + 1))
    mapped = map_offsets(r.anchor_norm, r.anchor_raw, positions).tolist()
    assert mapped[0] >= 0 and mapped[-1] <= len(raw)
    assert all(a <= b for a, b in zip(mapped, mapped[1:]))


@settings(max_examples=300, deadline=None)
@given(text_strategy, st.lists(st.integers(min_value=-3, max_value=130), max_size=150))
def test_offsets_mapped_in_python_agree_with_numpy(raw, positions):
    # real anchors (one, or many where fixers moved text), positions few and many, inside and past the text
    r = normalise_text(raw)
    for some in (positions[:5], positions[:64], positions, list(range(len(r.text) + 1))):
        expected = map_offsets(r.anchor_norm, r.anchor_raw, some).tolist() if some else []
        got = map_offsets_list(r.anchor_norm, r.anchor_raw, some)
        assert got == expected and all(type(x) is int for x in got)


_ODD_SPACES = st.text(alphabet=" \t\n\u00a0\u2009\u200bab.é&\r\x07", max_size=40)


def _whitespace_by_definition(text: str) -> str:
    import re

    text = re.sub("[\u200b\u2060\ufeff]", "", re.sub("[\u00a0\u2000-\u200a\u202f\u205f\u3000\t]", " ", text))
    return re.sub(r"[ ]+$", "", re.sub(r"(?<=\S) {2,}(?=\S)", " ", text), flags=re.MULTILINE)


@settings(max_examples=400, deadline=None)
@given(_ODD_SPACES)
def test_whitespace_fixer_and_ftfy_check_equal_their_definitions(text):
    # the fast paths (substring tests, a literal-led regex) against the plain regexes they replace
    import ftfy

    from dedup.normalise import ftfy_can_act

    assert FIXERS["whitespace"](text) == _whitespace_by_definition(text)
    if not ftfy_can_act(text):  # the cheap check may only skip texts ftfy leaves alone
        assert ftfy.fix_text(text, uncurl_quotes=False) == text


def test_whitespace_fixer_on_reuters_equals_its_definition():
    import polars as pl

    from .conftest import REUTERS

    for text in pl.read_ndjson(need(REUTERS)).head(2000)["text"].to_list():
        assert FIXERS["whitespace"](text) == _whitespace_by_definition(text)


_ENTITY_TEXT = st.lists(st.sampled_from(list("ab <>&;#x3AE9") + [
    "&amp;", "&lt;", "&eacute;", "&EACUTE;", "&Atilde;&copy;", "&#3;", "&#x41;", "&#128;", "&nbsp;", "&amp;lt;", "\t", "\n", "\r",
]), max_size=30).map("".join)


def _assert_ftfy_fast_path_exact(texts) -> None:
    from dedup.normalise import _ftfy_explained, ftfy_can_act, ftfy_fix_and_detail

    for text in texts:
        want = _ftfy_explained(text) if ftfy_can_act(text) else (text, "")
        assert ftfy_fix_and_detail(text) == want, text


@settings(max_examples=400, deadline=None)
@given(_ENTITY_TEXT)
def test_ftfy_ascii_entity_path_is_ftfy_generated(text):
    """The ASCII shortcut (ftfy's unescape_html alone) gives ftfy's own text and steps."""
    _assert_ftfy_fast_path_exact([text])


def test_ftfy_ascii_entity_path_is_ftfy_on_real_text():
    import json

    import polars as pl

    from dedup.config import NormaliseConfig
    from dedup.normalise import _units

    from .conftest import REUTERS

    texts = pl.read_ndjson(need(REUTERS)).head(3000)["text"].to_list()
    units = [t[s:e] for t in texts for s, e in _units(t, NormaliseConfig().max_unit_chars)]
    cases = [c["original"] for name in ("synthetic", "in-the-wild", "negative")
             for c in json.loads(need(FTFY_CASES / f"{name}.json").read_text(encoding="utf-8"))]
    _assert_ftfy_fast_path_exact(units + cases)
