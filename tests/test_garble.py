"""Garble scoring on real cases: the seed's caption pairs and body, FRANK, MRPC, Reuters, the CLI."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz import process

from dedup import garble as G
from dedup import schema as S
from dedup.config import PipelineConfig, load_config

from .conftest import DATA, REUTERS, SEED, SHARED, need
from .test_cli import run

LABELS = json.loads((DATA / "seed_garble.json").read_text(encoding="utf-8"))
# Labelled distortions that no detector finds yet, as (second passage, type); none at present.
KNOWN_MISSES: set[tuple[int, str]] = set()


@pytest.fixture(scope="module")
def seed_passages(seed_result):
    return seed_result.passages[S.P_TEXT].to_list()


@pytest.fixture(scope="module")
def seed_verdicts(seed_passages):
    ctx = G.Context.from_texts(seed_passages)
    return [G.score_pair(seed_passages[p["original"]], seed_passages[p["second"]], context=ctx) for p in LABELS["pairs"]]


def test_seed_pairs_verdicts(seed_verdicts):
    truth = [p["label"] == "garbled" for p in LABELS["pairs"]]
    pred = [v.label == G.GARBLED for v in seed_verdicts]
    tp = sum(p and t for p, t in zip(pred, truth))
    assert tp / sum(pred) >= 0.9 and tp / sum(truth) >= 0.9
    wrong = [(p["original"], p["second"], v.label) for p, v, t in zip(LABELS["pairs"], seed_verdicts, truth) if (v.label == G.GARBLED) != t]
    assert wrong == []  # with the shipped curve (fitted on these pairs); the benchmark judges each out of sample


def test_seed_pairs_name_each_labelled_distortion(seed_passages, seed_verdicts):
    for p, v in zip(LABELS["pairs"], seed_verdicts):
        rewrite = seed_passages[p["second"]]
        found = {(r.type, rewrite[r.start : r.end]) for r in v.reasons}
        for d in p["distortions"]:
            if (p["second"], d["type"]) in KNOWN_MISSES:
                assert d["type"] not in {t for t, _ in found}, "a known miss is found now: take it off KNOWN_MISSES"
                continue
            assert (d["type"], d["span"]) in found, (p["second"], d, sorted(found))


def test_reason_spans_are_exact(seed_passages, seed_verdicts):
    for p, v in zip(LABELS["pairs"], seed_verdicts):
        original, rewrite = seed_passages[p["original"]], seed_passages[p["second"]]
        for r in v.reasons:
            assert 0 <= r.start <= r.end <= len(rewrite)
            if r.orig_start is not None:
                quoted = original[r.orig_start : r.orig_end]
                assert quoted and (quoted in r.explanation or r.type in ("quote_altered", "relation_changed")), r
            if r.end > r.start and r.type not in ("quote_altered", "relation_changed", "doubled_words", "role_in_parenthesis"):
                assert rewrite[r.start : r.end] in r.explanation, r


@pytest.mark.parametrize(
    "original, rewrite",
    [
        # faithful paraphrase: clauses reordered, synonyms, "Ukraine's flag" -> "the flag of Ukraine"
        ("Ukraine's flag flies as President Zelensky salutes the troops in Kharkiv on Monday",
         "As President Zelensky salutes Kharkiv’s troops on Monday, the flag of Ukraine flies."),
        ("Russian state media on Friday released footage of the military drills, including sniper training, taking place on the Ukrainian border",
         "Russian state media published footage on Friday of military drills and sniper training that took place at the Ukrainian frontier."),
        # British and American spelling, an accent, a number word
        ("Ukrainian Defence Minister Oleksii Reznikov spoke to five armoured units", "Ukrainian Defense Minister Oleksii Reznikov spoke to 5 armored units"),
        ("Marcos Jimenez said the indictment strikes at the top", "Marcos Jiménez said the indictment strikes at the top"),
    ],
)
def test_faithful_paraphrase_is_not_flagged(original, rewrite):
    v = G.score_pair(original, rewrite)
    assert v.label == G.FAITHFUL, v.reasons


def test_spelling_the_source_uses_is_not_a_misspelling(seed_passages):
    # "Zelenskyy" and "Zelensky" both occur in the seed (and in real wire copy)
    ctx = G.Context.from_texts(seed_passages)
    v = G.score_pair("President Volodymyr Zelenskyy visits troops", "President Volodymyr Zelensky visits troops", context=ctx)
    assert v.label == G.FAITHFUL and v.reasons == ()


@pytest.mark.parametrize(
    "text",
    [
        "The the market opened lower, traders said.",  # a doubled function word: a typo that changes no fact
        "Biden will make it very, very difficult for Putin.",  # emphasis
        "Boutros Boutros-Ghali met the ministers.",  # a name
        "The company reported a lose-lose outcome.",
        "He said: “We will wait and see.",  # a quotation running on into the next paragraph
    ],
)
def test_ordinary_text_is_not_flagged_unpaired(text):
    assert G.score_text(text).reasons == ()


def test_typo_of_a_common_word_is_not_a_name_variant():
    ctx = G.Context.from_texts(["On Wednesday the Treasury said.", "Wednesday's sale.", "By Wednesday, the Treasury."])
    assert G.score_text("The Treassury said on Wedndsday it would sell notes.", context=ctx).reasons == ()


def test_seed_unpaired_in_the_pipeline(seed_result):
    """Every intrinsic garble labelled in the seed body is flagged with its type; no clean passage is."""
    p = seed_result.passages
    seconds = {x["second"] for x in LABELS["pairs"]}
    want = {u["passage"]: u["type"] for u in LABELS["unpaired"]}
    body = p.filter(~pl.col(S.P_INDEX).is_in(list(seconds)) & (pl.col(S.P_KIND) != "fragment"))
    flagged_clean = []
    for idx, label, reasons in body.select(S.P_INDEX, S.G_LABEL, S.G_REASONS).iter_rows():
        types = {r["type"] for r in reasons}
        if idx in want:
            assert label == G.GARBLED and want[idx] in types, (idx, label, types)
        elif label == G.GARBLED:
            flagged_clean.append(idx)
    clean = body.height - len(want)
    assert len(flagged_clean) / clean <= 0.05, flagged_clean


def test_pipeline_reason_offsets_are_raw(seed_result, seed_text):
    """Reasons carry raw-document offsets; their text and the original's text are raw slices."""
    p = seed_result.passages.filter(pl.col(S.G_LABEL) == G.GARBLED)
    checked = 0
    for start, end, reasons in p.select(S.P_START, S.P_END, S.G_REASONS).iter_rows():
        for r in reasons:
            assert seed_text[r["start"] : r["end"]] == r["text"]
            if r["orig_start"] is not None:
                assert seed_text[r["orig_start"] : r["orig_end"]] == r["orig_text"]
            checked += 1
    assert checked >= 25
    # the glued quote of the raw seed ("imposing’substantial’") is reported where it stood
    glued = [r for rs in p[S.G_REASONS].to_list() for r in rs if r["type"] == "quote_repaired"]
    assert any("’substantial" in seed_text[r["start"] - 1 : r["end"] + 12] for r in glued), glued


def test_drop_action_cuts_garbled_passages(tmp_path):
    from dedup import clean

    result = clean(SEED, load_config(None, ["garble.action=drop"]))
    p = result.passages
    garbled_kept_before = p.filter((pl.col(S.G_LABEL) == G.GARBLED) & (pl.col(S.DROP_REASON) == S.REASON_GARBLED))
    assert garbled_kept_before.height == result.stats["garble"]["passages_dropped"] > 0
    cleaned = result.kept[S.TEXT_CLEAN][0]
    assert "Volodymyrzelsky" not in cleaned and "Germany, Germany" not in cleaned
    assert "Kremlin warned Europe" in cleaned  # a faithful passage stays
    paths = result.write(tmp_path)
    dropped = pl.read_ndjson(paths["dropped_passages"])
    assert (dropped[S.DROP_REASON] == S.REASON_GARBLED).sum() == garbled_kept_before.height


def test_garble_switched_off():
    from dedup import clean

    result = clean(SEED, load_config(None, ["garble.enabled=false"]))
    assert set(result.passages[S.G_LABEL].unique()) == {G.NOT_SCORED}
    assert "garble" not in result.stats


def test_rapidfuzz_scorer_shape():
    query = "Russian soldiers on the border with Ukraine"
    choices = ["Ukrainian soldiers at Ukraine's border", "Russian soldiers at the border with Ukraine"]
    best = process.extract(query, choices, scorer=G.scorer, score_cutoff=0.5, limit=None)
    assert [c for c, _, _ in best] == ["Ukrainian soldiers at Ukraine's border"]
    assert G.scorer(query, choices[1]) < 0.5


def test_platt_fit_ignores_the_base_rate():
    raw = [0.0, 0.1, 0.15, 0.0, 0.7, 0.8, 0.95, 0.5]
    y = [0, 0, 0, 0, 1, 1, 1, 0]
    once = G.fit_platt(raw, y)
    more_negatives = G.fit_platt(raw + [r for r, t in zip(raw, y) if not t] * 3, y + [0] * 15)
    assert once == pytest.approx(more_negatives, rel=1e-6)
    assert np.isfinite(G.fit_platt([0, 0, 1, 1], [0, 0, 1, 1])["a"])  # separable data: finite slope


def test_shipped_calibration_is_current(seed_passages):
    """dedup/garble_calibration.json equals a refit on its labelled data (rerun
    ``python -m benchmarks.garble_eval --fit`` after changing a detector)."""
    from benchmarks.garble_eval import fitted_calibration, frank_rows

    cal = fitted_calibration(seed_passages, frank_rows(need(SHARED / "frank" / "valid.jsonl")))
    for regime in ("paraphrase", "summary"):
        assert G.CALIBRATION[regime]["a"] == pytest.approx(cal[regime]["a"], abs=1e-4), regime
        assert G.CALIBRATION[regime]["b"] == pytest.approx(cal[regime]["b"], abs=1e-4), regime


def test_frank_balanced_accuracy():
    """FRANK's human factuality labels: the paired scorer beats the 0.65 target out of fold."""
    from benchmarks.garble_eval import frank_eval, frank_rows, frank_scores

    rows = frank_rows(need(SHARED / "frank" / "valid.jsonl"))
    res = frank_eval(rows, frank_scores(rows))
    assert res["balanced_accuracy"] >= 0.65
    assert res["roc_auc"] >= 0.7


def test_mrpc_numbers_change_is_caught():
    from benchmarks.garble_eval import mrpc_rows

    rows = mrpc_rows(need(SHARED / "mrpc" / "train.tsv"))
    # a real non-paraphrase that differs in its figures
    lab, s1, s2 = next(r for r in rows if r[1].startswith("Yucaipa owned Dominick's"))
    v = G.score_pair(s1, s2)
    assert lab == 0 and v.label == G.GARBLED
    assert {"number_changed", "date_invented"} <= {r.type for r in v.reasons}


def test_reuters_clean_wire_copy_is_rarely_flagged(reuters_result):
    """Reuters is wire copy, not spun: what is flagged there is real damage (doubled content words,
    one-off misspelt names) and stays rare."""
    p = reuters_result.passages
    scored = p.filter(pl.col(S.G_LABEL) != G.NOT_SCORED)
    garbled = scored.filter(pl.col(S.G_LABEL) == G.GARBLED)
    assert garbled.height / scored.height < 0.005
    assert reuters_result.stats["garble"]["seconds"] < reuters_result.stats["total_seconds"] / 2


def test_near_duplicate_documents_are_scored_against_the_kept_copy(reuters_result):
    d = reuters_result.documents
    near = d.filter(pl.col(S.DUP_KIND) == "near")
    assert near.height and (near[S.G_LABEL] != G.NOT_SCORED).all()
    assert (d.filter(pl.col(S.DUP_KIND).is_null())[S.G_LABEL] == G.NOT_SCORED).all()
    # reuters-1125 repeats reuters-522 with other figures: the scorer names the changed numbers
    row = d.filter(pl.col(S.DOC_ID) == "reuters-1125").row(0, named=True)
    assert row[S.DUPLICATE_OF] == "reuters-522" and row[S.G_LABEL] == G.GARBLED
    kinds = {(r["type"], r["orig_text"], r["text"]) for r in row[S.G_REASONS]}
    assert ("number_changed", "3", "1") in kinds


def test_cli_score_pair_and_text():
    proc = run("score", "--original", "They will speak by phone on Tuesday", "--rewrite", "The two will meet by phone Tuesday", "--json")
    assert proc.returncode == 0, proc.stderr
    d = json.loads(proc.stdout)
    assert d["garble_label"] == "garbled" and d["garble_reasons"][0]["type"] == "event_changed"
    proc = run("score", "--original", "Russian soldiers on the border", "--rewrite", "Ukrainian soldiers on the border")
    out = proc.stdout.decode()
    assert "side_swapped" in out and "[[Russian]] soldiers" in out and "[[Ukrainian]] soldiers" in out
    proc = run("score", "--text", "leaders from France, Germany, Germany, Italy")
    assert "doubled_words" in proc.stdout.decode()
    proc = run("score", "--text", "x", "--original", "y")
    assert proc.returncode == 1 and proc.stderr.decode().startswith("dedup error: score needs")


def test_cli_score_file_keeps_every_row(tmp_path):
    src = tmp_path / "pairs.jsonl"
    src.write_text(
        json.dumps({"id": "a", "original": "Russia has 50 battalions and will be ready to invade", "rewrite": "Russia has 50 battalions and will invade"}) + "\n"
        + json.dumps({"id": "b", "original": "no rewrite here"}) + "\n"
        + "{not json\n"
        + json.dumps({"id": "d", "original": "Ukraine's flag flies", "rewrite": None}) + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "scored.parquet"
    proc = run("score", str(src), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    frame = pl.read_parquet(out)
    assert frame.height == 4
    assert frame["garble_label"].to_list() == ["garbled", "not scored", "not scored", "not scored"]
    errors = frame["error"].to_list()
    assert errors[0] is None
    assert f"{src} line 2: no text field 'rewrite'" in errors[1] and "--rewrite-field" in errors[1]
    assert f"{src} line 3: not valid JSON" in errors[2]
    assert "record 4: 'rewrite' is empty" in errors[3]


def test_cli_score_file_errors(tmp_path):
    src = tmp_path / "p.csv"
    src.write_text("id,body\n1,Biden met Putin in Geneva\n", encoding="utf-8")
    proc = run("score", str(src))
    assert proc.returncode == 1
    assert proc.stderr.decode().strip() == (
        f"dedup error: {src}: no 'rewrite'/'original' columns (pairs) and no 'text' column (passages); columns present: id, body; "
        "name them with --original-field/--rewrite-field or --text-field"
    )
    proc = run("score", str(src), "--text-field", "body", "-o", str(tmp_path / "out.txt"))
    assert proc.returncode == 1 and "name the output .jsonl, .parquet or .csv" in proc.stderr.decode()
    proc = run("score", str(src), "--text-field", "body")
    assert proc.returncode == 0 and json.loads(proc.stdout.decode().splitlines()[0])["garble_label"] == "faithful"


def test_config_default_has_garble():
    assert PipelineConfig().garble.threshold == 0.5 and PipelineConfig().garble.action == "flag"
    with pytest.raises(Exception, match=r"garble.action = 'delete' is not allowed; use one of: flag, drop"):
        load_config(None, ["garble.action=delete"])
    assert SEED.exists() and REUTERS.name


def _tokens_by_definition(text: str) -> list[tuple]:
    """Tokens as first written: every word lower-cased on its own, one at a time."""
    out, prev_end = [], 0
    for m in G._TOKEN.finditer(text):
        word, start = m.group(), m.start()
        low = word.lower().replace("’", "'")
        low = G._plain(low) if not low.isascii() else low
        low = low[:-2] if low.endswith("'s") and len(low) > 2 else low
        cap, initial = word[0].isupper(), False
        if cap:
            gap = text[prev_end:start].rstrip(" \t\n“”\"‘’'([")
            initial = (not out) if not gap else gap[-1] in ".!?:"
        out.append((word, start, m.end(), low, cap, initial, word[0].isdigit()))
        prev_end = m.end()
    return out


def test_tokens_equal_their_definition(seed_text):
    # each word is lower-cased on its own (low_of): İ (longer in lower case) and a Greek capital
    # sigma (final or not, by what follows) as the definition has them
    # tokens come from one findall of (gap, token) pairs: the gap must stop where a token starts
    # (underscores and ² are the edges of \w), in ASCII texts and in others
    texts = [seed_text, "İstanbul’s mayor. ΟΔΟΣ.Α and ΟΔΟΣ Α; Ukraine’s troops, ‘Biden’ (Jiménez) 1,000th", "", "  ",
             "_x_ 1,000th 3.5bn 2nd ²³ naïve o'neill __init__ “Kyiv.” (Biden) — Putin", "ŞIŞLI\u00a0said\tit’s ‘off’. 12:30",
             "_Ä_ 9_9 x² _Biden"]
    if REUTERS.exists():
        texts += pl.read_ndjson(REUTERS).head(1500)["text"].to_list()
    texts += [t.replace('"', "“", 1).replace("'", "’").replace(" ", "\u00a0", 1) for t in texts[:400]]  # not ASCII
    for text in texts:
        got = [(t.text, t.start, t.end, t.low, t.cap, t.initial, t.number) for t in G.tokens(text)]
        assert got == _tokens_by_definition(text), text[:80]
    assert sum(not t.isascii() for t in texts) > (300 if REUTERS.exists() else 3)


def _has_by_definition(toks, low: str) -> bool:
    # what _Support.has answers, by its definition over every word of the text
    lows = {t.low for t in toks}
    long_words = {t.low for t in toks if len(t.low) >= 4 and not t.number}
    return (low in lows or any(G._stem(w) == G._stem(low) for w in lows) or any(G._variant(w) == G._variant(low) for w in lows)
            or (len(low) >= 4 and any(G._derived(low, w) for w in long_words if w[:4] == low[:4])))


def test_support_forms_made_by_initial_answer_as_the_definition(seed_text):
    import random

    texts = [seed_text, "Defence of the armoured troops; 1,000 buses stopped; llamas, our colours, organised"]
    if REUTERS.exists():
        texts += pl.read_ndjson(REUTERS).head(60)["text"].to_list()
    rnd = random.Random(2)
    vocab = sorted({t.low for text in texts for t in G.tokens(text)})
    asked = 0
    for text in texts:
        toks = G.tokens(text)
        support = G._Support.of(toks)
        words = rnd.sample(vocab, min(40, len(vocab))) + ["defense", "armored", "bus", "stop", "lamas", "colors", "organize",
                                                          "crimean", "landing", "x", ""]
        words += [w + end for w in rnd.sample(vocab, 10) for end in ("s", "ed", "ing", "n", "ise")]
        for w in words:
            assert support.has(w) == _has_by_definition(toks, w), (w, text[:60])
            asked += 1
    assert asked > 500


def test_zipf_equals_wordfreq_on_a_corpus_vocabulary(seed_text):
    # the direct table lookup (lower-case ASCII words, apostrophes inside split as wordfreq's tokenizer
    # splits them) must give wordfreq's own answer: on a corpus's words, on every such word of the
    # table, and on made-up words where one or two letters and an apostrophe come before a vowel or h
    import random

    from wordfreq import get_frequency_dict, zipf_frequency

    texts = [seed_text] + (pl.read_ndjson(REUTERS).head(3000)["text"].to_list() if REUTERS.exists() else [])
    words = {t.low for text in texts for t in G.tokens(text)} | {"zzzqx", "a", "the", "don't", "naïve", "o'hare", "qu'il"}
    table = get_frequency_dict("en")
    assert G._english_buckets().keys() == table.keys()
    words |= {w for w in table if "'" in w and G._APOSTROPHE_WORD.fullmatch(w)}
    rnd = random.Random(0)
    words |= {"'".join("".join(rnd.choice("abdehiloqtuy") for _ in range(rnd.randint(1, 3))) for _ in range(rnd.randint(2, 4)))
              for _ in range(3000)}
    G.zipf.cache_clear()
    assert len(words) > (35_000 if REUTERS.exists() else 20_000)
    assert {w: G.zipf(w) for w in words} == {w: zipf_frequency(w, "en") for w in words}
    assert G._wordfreq_tokens("d'america") == ["d", "america"] and G.zipf("o'hare") > 0


def test_near_duplicates_scored_on_worker_processes_as_in_one(reuters_result):
    # the corpus-level scoring sent to two spawned workers in batches of five: the same columns
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from dedup.garble_stage import score_documents

    d, config = reuters_result.documents, reuters_result.config.garble
    assert (d[S.DUP_KIND] == "near").sum() > 10  # so that there are several batches
    cols = [S.G_SCORE, S.G_LABEL, S.G_REASONS]
    alone = score_documents(d, config).select(cols)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        pooled = score_documents(d, config, pool=pool, workers=2, batch=5).select(cols)
    assert pooled.equals(alone)
    assert alone.equals(d.select(cols))  # and as the whole run scored them


def _doubled_by_definition(text: str, toks) -> list:
    """_doubled as first written: every position tried in turn."""
    out, lows, i = [], [t.low for t in toks], 0
    while i < len(toks):
        for n in (3, 2, 1):
            if i + 2 * n > len(toks) or lows[i : i + n] != lows[i + n : i + 2 * n]:
                continue
            a0, a1, b0, b1 = toks[i], toks[i + n - 1], toks[i + n], toks[i + 2 * n - 1]
            gap = text[a1.end : b0.start]
            if gap not in G._DOUBLE_GAPS or not G._plain_run(text, toks, i, i + 2 * n):
                continue
            if a0.number or text[a0.start : a1.end] != text[b0.start : b1.end]:
                continue
            if n == 1 and (a0.low in G._REPEATABLE or a0.low in G.STOP or len(a0.low) < 2 or (a0.cap and gap == " ")):
                continue
            out.append((a0.start, b1.end))
            i += 2 * n - 1
            break
        i += 1
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["Kyiv", "kyiv", "troops", "the", "very", "7", "Biden", ",", ".", " "]), max_size=24))
def test_doubled_words_equal_their_definition(words):
    text = " ".join(words).replace(" ,", ",")
    toks = G.tokens(text)
    assert [(r.start, r.end) for r in G._doubled(text, toks)] == _doubled_by_definition(text, toks)


def test_doubled_words_on_reuters_equal_their_definition(seed_text):
    texts = [seed_text] + (pl.read_ndjson(REUTERS).head(2000)["text"].to_list() if REUTERS.exists() else [])
    for text in texts:
        toks = G.tokens(text)
        assert [(r.start, r.end) for r in G._doubled(text, toks)] == _doubled_by_definition(text, toks)


def test_variant_cheap_check_changes_nothing(seed_text):
    # the substring check before the rules may only skip words that no rule would change
    texts = [seed_text] + (pl.read_ndjson(REUTERS).head(1500)["text"].to_list() if REUTERS.exists() else [])
    words = {t.low for text in texts for t in G.tokens(text)} | {"defence", "armoured", "organised", "analyse", "centre", "travelled", "e-mail"}

    def by_rules(w: str) -> str:
        for pat, rep in G._VARIANT_RULES:
            w = pat.sub(rep, w)
        return w

    assert {w: G._variant(w) for w in words} == {w: by_rules(w) for w in words}


def _screen_cases(seed_text: str) -> list[list[str]]:
    """Documents as lists of passages: the seed, Reuters stories and made-up damage of every kind."""
    docs = [seed_text] + (pl.read_ndjson(REUTERS).head(1500)["text"].to_list() if REUTERS.exists() else [])
    made = [
        "Volodymyr Zelensky spoke. Later Volodymyrzelsky said so.",
        "Reznikov met Reznikov's aides. Raznikov then left.",
        "Leaders of France, Germany, Germany and Italy met.",
        "The price of the oil of the price of the oil rose by 7 7 percent, very very fast.",
        "He said “it is over. Joe Biden (Russian President Vladimir Putin) spoke.",
        "ŞIŞLI Şişli İstanbul Jiménez Jimenez ﬁnance Aﬁnance.",
    ]
    return [[p for p in d.split("\n") if p.strip()] for d in docs + made]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["Kyiv", "kyiv", "Kyivkyiv", "Zelenskyy", "Zelenskyyy", "Volodymyrzelenskyy",
                                          "Volodymyr", "the", "very", "7", ",", ".", " ", "“", "(", ")", "President"]),
                         max_size=20), min_size=1, max_size=4))
def test_screened_unpaired_verdicts_equal_the_full_ones_generated(parts):
    _assert_screen_exact([[" ".join(p).replace(" ,", ",") for p in parts]])


def test_screened_unpaired_verdicts_equal_the_full_ones(seed_text):
    """score_text with the passage's words (cheap checks first, no tokens for most passages) gives
    the verdict the full detectors give, on real and made-up documents; the context from words is
    the context from tokens."""
    _assert_screen_exact(_screen_cases(seed_text))


def _assert_screen_exact(docs: list[list[str]]) -> None:
    for passages in docs:
        full_ctx = G.Context.from_texts(passages)
        ctx = G.Context.from_capitals([G.capitals(G.words(p)) for p in passages], passages)
        assert ctx.names == full_ctx.names
        for p in passages:
            want = G.score_text(p, context=full_ctx, toks=G.tokens(p))
            ws = G.words(p)
            assert G.score_text(p, context=ctx, ws=ws) == want, p
            assert G.score_text(p, context=ctx, ws=ws, caps=G.capitals(ws)) == want, p
            extra = [G.Reason("quote_repaired", 0, 0, "a repaired quote", 3, 4)]  # as the stage adds them
            assert G.score_text(p, context=ctx, ws=ws, extra_reasons=extra) == G.score_text(
                p, context=full_ctx, toks=G.tokens(p), extra_reasons=extra), p
        assert ctx.bigrams == full_ctx.bigrams
        every = [w for p in passages for w in G.words(p)]
        if not G.may_need_tokens(every, ctx, G.capitals(every)):  # the stage then reads each passage as text alone
            for p in passages:
                assert G.text_read_verdict(p, len(G.words(p))) == G.score_text(p, context=full_ctx, toks=G.tokens(p)), p


def test_passages_of_a_document_screened_whole_get_their_own_verdicts(reuters_result, monkeypatch):
    # score_passages asks the token-reading detectors once per document; where they can find nothing
    # in it, each passage is read as text alone: the same frame as asking passage by passage
    from dedup import garble_stage

    passages = reuters_result.passages.drop(S.G_SCORE, S.G_LABEL, S.G_MODE, S.G_REASONS)
    docs, config = reuters_result.documents, reuters_result.config.garble
    alone = []
    monkeypatch.setattr(garble_stage, "text_read_verdict", lambda *a, **k: alone.append(1) or G.text_read_verdict(*a, **k))
    screened = garble_stage.score_passages(passages, docs, config)
    assert len(alone) > passages.height / 2  # most passages are read as text alone
    monkeypatch.setattr(garble_stage, "may_need_tokens", lambda *a, **k: True)  # no document screened out
    assert screened.equals(garble_stage.score_passages(passages, docs, config))


def _assert_ascii_pattern_exact(texts) -> None:
    for text in texts:
        assert [m.span() for m in G._TOKEN_ASCII.finditer(text)] == [m.span() for m in G._TOKEN.finditer(text)], text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127), max_size=60))
def test_ascii_token_pattern_is_the_unicode_one_on_ascii_generated(text):
    _assert_ascii_pattern_exact([text, text.replace("'", "'s'"), "5th 5Th 1,000.5 O'Neil rock'n'roll 3M _x_ a1b"])


def test_ascii_token_pattern_is_the_unicode_one_on_reuters():
    _assert_ascii_pattern_exact(pl.read_ndjson(need(REUTERS)).head(3000)["text"].to_list())


def test_nearly_in_answers_as_partial_ratio(seed_text):
    # the quote check's shortcut (a substring, or one stretch of the original already scoring 90)
    # must give partial_ratio's own answer: on stretches of real stories with words changed, dropped
    # or swapped in, as a near copy's quotation has them, and on stretches from another story
    import random

    from rapidfuzz import fuzz

    from dedup.minhash import fold

    texts = [seed_text] + (pl.read_ndjson(REUTERS).head(400)["text"].to_list() if REUTERS.exists() else [])
    folded = [fold(t) for t in texts if len(fold(t)) > 120]
    rnd = random.Random(4)
    answers = {True: 0, False: 0}
    shortcut = 0
    for _ in range(3000):
        hay = rnd.choice(folded)
        src = hay if rnd.random() < 0.8 else rnd.choice(folded)
        words = src.split()
        lo = rnd.randrange(len(words))
        stretch = words[lo : lo + rnd.randint(3, 70)]
        for _ in range(rnd.choice((0, 1, 2, 4, 8))):
            if not stretch:
                break
            k = rnd.randrange(len(stretch))
            stretch[k : k + 1] = rnd.choice(([], [rnd.choice(words)], [stretch[k], rnd.choice(words)]))
        needle = " ".join(stretch)
        if not needle:
            continue
        expected = fuzz.partial_ratio(needle, hay) >= 90
        assert G._nearly_in(needle, hay) == expected, (needle, hay[:80])
        answers[expected] += 1
        shortcut += expected and needle not in hay and len(needle) > 64
    assert min(answers.values()) > 300 and shortcut > 100, (answers, shortcut)



def test_paren_matches_are_the_pattern_s_own(seed_text):
    # the role-in-parenthesis check searches from each "(" instead of trying every capital: the
    # matches (spans and groups) must be finditer's, on stories, edited stories and edge cases
    import random

    texts = [seed_text, "A B C D E (Foreign Minister) x", "Kuleba(Minister Dmytro Kuleba)", "McDonald (CEO Steve Easterbrook)",
             "(Reuters) - Biden (President Joe Biden) and ((Nested (Inner Text)) Putin (head))", "Ann (ab) Bob (abc)",
             "O’Neill\u00a0\n(Chief Executive Officer) – Jean-Luc (le ministre) (second) Third (x" + "y" * 90 + ")",
             "Kyiv Post (" + "ab " * 26 + "cd) and Kyiv Post (" + "ab " * 26 + "cde)"]  # 80 characters inside, and 81
    if REUTERS.exists():
        texts += [p for t in pl.read_ndjson(REUTERS).head(3000)["text"].to_list() for p in t.split("\n") if "(" in p]
    rnd = random.Random(5)
    for t in texts[:300]:  # parentheses and words moved about
        chars = list(t)
        for _ in range(5):
            chars.insert(rnd.randrange(len(chars) + 1), rnd.choice(["(", ")", " ", "Kyiv ", ", "]))
        texts.append("".join(chars))
    found = 0
    for text in texts:
        want = [(m.span(), m.groups()) for m in G._PAREN.finditer(text)]
        assert [(m.span(), m.groups()) for m in G._paren_matches(text)] == want, text[:80]
        found += len(want)
    assert found > (300 if REUTERS.exists() else 5)


# ---------------------------------------------------------------------------------------------
# near copies read sentence by sentence (score_near_copy) against the whole reading (score_pair)
# ---------------------------------------------------------------------------------------------

_TOKEN_FIELDS = ("text", "start", "end", "low", "cap", "initial", "number")


def _fields(toks) -> list[tuple]:
    return [tuple(getattr(t, f) for f in _TOKEN_FIELDS) for t in toks]


def _assert_sentence_wise_tokens(text: str) -> None:
    s = G._Sentences(text)
    whole = _fields(G.tokens(text))
    assert _fields(t for i in range(len(s.spans)) for t in s.toks(i)) == whole, text[:80]
    assert s.words == G.words(text) and s.lows == [t[3] for t in whole]
    assert [s.token(k).start for k in range(len(whole))] == [t[1] for t in whole]
    assert [s.index_at(t[1]) for t in whole] == list(range(len(whole)))


def test_sentence_wise_tokens_are_the_whole_text_s(seed_text):
    # a near copy is tokenised a sentence at a time: every token lies inside one sentence, none is
    # cut, and each comes out as tokens() of the whole text gives it, the capital after a line break
    # without a stop (not a sentence opener), after a stop, and at the start included
    texts = [seed_text, "Headline words\nBody starts here. Mr. Smith said so.\n\n    New para’s “Quote.” 1,000th",
             "İstanbul’s mayor. ΟΔΟΣ.Α and ΟΔΟΣ Α; Ukraine’s troops, ‘Biden’ (Jiménez) 1,000th", "", "  ", ". . !",
             "_x_ 1,000th 3.5bn 2nd ²³ naïve o'neill __init__ “Kyiv.” (Biden) — Putin", "ŞIŞLI\u00a0said\tit’s ‘off’. 12:30",
             "_Ä_ 9_9 x² _Biden. _Ä. ²Biden! “Who?” U.S. Army\u2028Next line. \u3000Full-width space. Ｆｕｌｌ．"]
    blns = SHARED / "encoding" / "blns" / "blns.json"
    if blns.exists():
        texts += [s for s in json.loads(blns.read_text(encoding="utf-8")) if isinstance(s, str)]
    if REUTERS.exists():
        texts += pl.read_ndjson(REUTERS).head(1500)["text"].to_list()
    for text in texts + [t.replace(" ", "\u00a0", 3).replace(". ", ".\n", 2) for t in texts[:300]]:
        _assert_sentence_wise_tokens(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["Mr.", "U.S.", "He", "said", "it", "1,000", "3.5", "2nd", "May", "é", "Ünal", "_", "²",
                                 ".", "!", "?", "…", "“", "”", "’", "'", "(", ")", " ", "  ", "\n", "\n\n", "\n    ",
                                 "\u00a0", "\u2028", "\t"]), max_size=40))
def test_sentence_wise_tokens_are_the_whole_text_s_generated(parts):
    _assert_sentence_wise_tokens("".join(parts))
    _assert_sentence_wise_tokens(" ".join(parts))


def _edited(text: str, rng, vocab: list[str], rate: float) -> str:
    """A near copy as a spinner or a careless editor makes one: words substituted, dropped and added
    at ``rate``, and now and then the changes the detectors look for (a figure, a month or weekday,
    a side, a hedge or negation, an event verb, a name misspelt or two names merged)."""
    swaps = {"Russian": "Ukrainian", "could": "will", "may": "will", "not": "", "will": "will not", "said": "denied",
             "Monday": "Tuesday", "March": "April", "June": "July", "talks": "meets", "met": "spoke", "U.S.": "Japanese"}
    words = text.split(" ")
    out = []
    for k, w in enumerate(words):
        r = rng.random()
        if r < rate / 3:
            continue
        if r < 2 * rate / 3:
            out.append(rng.choice(vocab))
            continue
        if w in swaps and rng.random() < 0.3:
            out.append(swaps[w])
        elif w[:1].isdigit() and rng.random() < 0.3:
            out.append(str(rng.randint(2, 99)) + w.lstrip("0123456789"))
        elif len(w) > 5 and w[0].isupper() and rng.random() < 0.1:
            out.append(w[:2] + w[3:])  # misspelt
        elif w[:1].isupper() and k + 1 < len(words) and words[k + 1][:1].isupper() and rng.random() < 0.1:
            out.append(w + words[k + 1].lower())  # merged with the next name
        else:
            out.append(w)
        if rng.random() < rate / 3:
            out.append(rng.choice(vocab))
    return " ".join(out)


def test_near_copies_read_sentence_by_sentence_find_what_the_whole_reading_finds(monkeypatch):
    # Reuters stories and seeded near copies of them (1-10% of the words edited, with the changes
    # the detectors look for), also with naughty strings among their sentences: score_near_copy,
    # which reads only the sentences the two versions do not share, gives score_pair's verdict,
    # findings and spans
    import random

    texts = [t for t in pl.read_ndjson(need(REUTERS)).head(2500)["text"].to_list() if len(G.words(t)) > G._LONG_TEXT][:400]
    rng = random.Random(7)
    vocab = sorted({w for t in texts[:100] for w in t.split()})
    pairs = [(t, _edited(t, rng, vocab, rate)) for t in texts for rate in (0.01, 0.05)]
    blns = need(SHARED / "encoding" / "blns" / "blns.json")
    hostile = [s for s in json.loads(blns.read_text(encoding="utf-8")) if isinstance(s, str)]
    for _ in range(200):  # stories broken up by naughty strings, joined by odd separators
        parts: list[str] = []
        while sum(len(p.split()) for p in parts) < 200:
            parts.append(rng.choice(hostile) if rng.random() < 0.4 else rng.choice(texts)[:400])
        text = rng.choice([" ", "\n", "\n\n", ". ", "\u2028", "\u00a0"]).join(parts)
        pairs.append((text, _edited(text, rng, vocab + hostile[:200], rng.choice([0.01, 0.05, 0.1]))))
    wholes = []
    monkeypatch.setattr(G, "paired_reasons", lambda *a, **k: wholes.append(1) or [])  # the sentence-wise path calls none
    fast = [G.score_near_copy(o, r) for o, r in pairs]
    monkeypatch.undo()
    assert not wholes
    full = [G.score_pair(o, r, unpaired=False) for o, r in pairs]
    assert [k for k, (a, b) in enumerate(zip(full, fast)) if a != b] == []
    found = {r.type for v in fast for r in v.reasons}
    assert {"number_changed", "date_changed", "negation_flipped", "modality_changed", "name_misspelt", "name_merged",
            "entity_invented", "entity_dropped", "event_changed", "side_swapped", "nationality_invented"} <= found, found
    assert len(pairs) >= 1000 and sum(v.label == G.GARBLED for v in fast) > 300


def test_reuters_near_duplicates_read_sentence_by_sentence_as_whole(reuters_result):
    d = reuters_result.documents
    kept = dict(zip(d[S.ROW].to_list(), d[S.TEXT_NORM].to_list()))
    near = d.filter(pl.col(S.DUP_KIND) == "near").select(S.TEXT_NORM, S.KEPT_ROW).rows()
    assert len(near) > 100
    for copy, row in near:
        assert G.score_near_copy(kept[row], copy) == G.score_pair(kept[row], copy, unpaired=False)


def test_a_sentence_copied_word_for_word_is_not_blamed_for_another(seed_text):
    # a long near copy shares "A comment on the deal came later." with its original; the original
    # says "could" in another sentence holding all its words: the shared sentence lost no hedge
    filler = " ".join(f"The board met on day {i} to review the big plan." for i in range(15))
    original = filler + " Officials said a comment on the deal came later than could be expected. A comment on the deal came later."
    copy = original.replace("day 3 to review the big plan", "day 3 to review the large plan")
    for v in (G.score_pair(original, copy, unpaired=False), G.score_near_copy(original, copy)):
        assert v.label == G.FAITHFUL and v.reasons == ()
    hedge_lost = copy.replace("A comment on the deal came later.", "A comment on the deal came later than expected.")
    for v in (G.score_pair(original, hedge_lost, unpaired=False), G.score_near_copy(original, hedge_lost)):
        assert [r.type for r in v.reasons] == ["modality_changed"]


def test_a_near_copy_that_moves_a_place_to_another_person():
    filler = " ".join(f"The board met on day {i} to review the big plan." for i in range(15))
    original = filler + " Secretary of State Antony Blinken spoke on Thursday in Stockholm. President Joe Biden stayed in Washington."
    copy = original.replace("in Stockholm. President Joe Biden stayed in Washington", "in Washington. President Joe Biden stayed in Stockholm")
    for v in (G.score_pair(original, copy, unpaired=False), G.score_near_copy(original, copy)):
        assert "relation_changed" in {r.type for r in v.reasons} and v.label == G.GARBLED


def test_every_letter_has_a_low_and_pairs_with_kana_sound_marks_score():
    # NFKD makes the half-width kana sound marks ﾞ and ﾟ combining marks: a token of them once had
    # an empty low, and a pair whose original held one failed in _Support (dedup score exited with a
    # traceback)
    import sys

    letters = [c for c in map(chr, range(sys.maxunicode + 1)) if c.isalnum() and G._TOKEN.fullmatch(c)]
    assert len(letters) > 100_000 and all(G.low_of(c) for c in letters)
    original = "Reporters saw ﾟ the Kremlin talks today, ﾞﾟ said Tanaka."
    rewrite = "Reporters saw the Kremlin talks today with Zelensky, said Tanaka."
    assert [r.type for r in G.score_pair(original, rewrite).reasons] == ["entity_invented"]
    long_original = " ".join([original] * 3 + [f"The board met on day {i}." for i in range(30)])
    long_rewrite = long_original.replace(original, rewrite, 1)
    assert G.score_near_copy(long_original, long_rewrite) == G.score_pair(long_original, long_rewrite, unpaired=False)
    proc = run("score", "--original", original, "--rewrite", rewrite, "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["garble_label"] == "garbled"


def test_a_number_beside_a_month_of_another_sentence_is_read_as_in_the_whole_text():
    # a number is a day when a month stands beside it, in the next sentence too ("in late February.
    # 2200 tonnes"): read sentence by sentence, its neighbour is still the whole text's, and two
    # sentences that differ are not neighbours when a shared one stands between them
    sessions = "alpha bravo charlie delta echo foxtrot golf hotel india kilo lima oscar papa romeo sierra".split()
    filler = " ".join(f"The board met in session {w} to review the big plan." for w in sessions)
    original = filler + " Prices peaked in late February. 2200 tonnes were shipped. Output fell in March. The mill closed. 12 staff left."
    day = original.replace("2200 tonnes", "2300 tonnes")
    figure = original.replace("Output fell in March.", "Output rose in March.").replace("12 staff", "13 staff")
    for copy, want in ((day, {"date_changed"}), (figure, {"number_changed"})):
        whole, near = G.score_pair(original, copy, unpaired=False), G.score_near_copy(original, copy)
        assert near == whole and {r.type for r in near.reasons} == want, (near.reasons, want)
