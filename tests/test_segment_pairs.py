from __future__ import annotations

import json

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup import schema as S
from dedup.config import PairsConfig
from dedup.normalise import normalise_text
from dedup.pairs import find_pairs

from .conftest import DATA

LABELS = json.loads((DATA / "seed_pairs.json").read_text(encoding="utf-8"))


def _found(passages: pl.DataFrame, kind: str) -> set[tuple[int, int]]:
    seconds = passages.filter((pl.col(S.P_PAIR_KIND) == kind) & (pl.col(S.P_ROLE) != "original"))
    return {(p, i) for p, i in seconds.select(S.P_PARTNER, S.P_INDEX).iter_rows()}


def test_seed_passages_slice_back_to_raw(seed_text, seed_result):
    p = seed_result.passages
    assert p.height == 167
    for start, end, text in p.select(S.P_START, S.P_END, S.P_TEXT).iter_rows():
        assert normalise_text(seed_text[start:end]).text == text
        assert not seed_text[start].isspace() and not seed_text[end - 1].isspace()


def test_seed_fragments(seed_result):
    frags = seed_result.passages.filter(pl.col(S.P_KIND) == "fragment")
    assert frags[S.P_INDEX].to_list() == LABELS["fragments"]
    assert frags[S.P_TEXT].to_list() == ["Biden", "Putin"]


def test_seed_caption_pairs_exactly(seed_result):
    p = seed_result.passages
    expected = {(c["original"], c["second"]) for c in LABELS["caption_pairs"]}
    assert len(expected) == 22
    assert _found(p, "caption") == expected
    verbatim = set(p.filter(pl.col(S.P_ROLE) == "verbatim")[S.P_INDEX].to_list())
    assert verbatim == {c["second"] for c in LABELS["caption_pairs"] if c["verbatim"]}


def test_seed_repeat_is_not_a_caption_pair(seed_result):
    p = seed_result.passages
    assert _found(p, "repeat") == {(r["original"], r["second"]) for r in LABELS["repeats"]}
    repeat = p.filter(pl.col(S.P_INDEX) == 50).row(0, named=True)
    assert repeat[S.P_ACTION] == "keep"  # a paraphrased repeat is reported, not removed


def test_seed_cleaned_text_drops_rewrites_only(seed_result):
    cleaned = seed_result.kept[S.TEXT_CLEAN][0]
    p = seed_result.passages
    for text, action, role in p.select(S.P_TEXT, S.P_ACTION, S.P_ROLE).iter_rows():
        if action == "drop" and role != "verbatim":
            assert text not in cleaned.split("\n\n")
        else:
            assert text in cleaned
    # the verbatim caption appears once, the originals stay
    kharkiv = p.filter(pl.col(S.P_INDEX) == 7)[S.P_TEXT][0]
    assert cleaned.count(kharkiv) == 1
    assert "\n\n\n" not in cleaned
    assert len(cleaned.split("\n\n")) == 167 - 22


def test_pair_actions_follow_config(seed_result):
    p = seed_result.passages.select(S.ROW, S.DOC_ID, S.P_INDEX, S.P_NORM_START, S.P_NORM_END, S.P_START, S.P_END,
                                    S.P_KIND, S.P_TEXT, S.P_WORDS)
    kept_all = find_pairs(p, PairsConfig(drop_rewrites=False, drop_verbatim_repeats=False))
    assert set(kept_all[S.P_ACTION].to_list()) == {"keep"}
    off = find_pairs(p, PairsConfig(enabled=False))
    assert off[S.P_ROLE].null_count() == off.height


def test_reuters_has_few_false_caption_pairs(reuters_result):
    """Reuters wire copy is not spun: its neighbouring paragraphs that look alike are parallel
    report lines, not rewrites. The verifier must reject nearly all of them."""
    p = reuters_result.passages
    captions = p.filter((pl.col(S.P_PAIR_KIND) == "caption") & (pl.col(S.P_ROLE) == "rewrite"))
    assert captions.height <= 10, captions.select(S.DOC_ID, S.P_TEXT).head(20)
    assert captions.height / p.height < 0.001


def test_long_document_is_not_compared_all_pairs():
    """5,000 real wire paragraphs in one document: LSH candidates are a sliver of all pairs."""
    import gzip

    from dedup.normalise import normalise
    from dedup.pairs import candidate_pairs
    from dedup.segment import segment

    from .conftest import REUTERS, need

    paras = []
    with gzip.open(need(REUTERS), "rt", encoding="utf-8") as fh:
        for line in fh:
            text = json.loads(line)["text"]
            paras += [" ".join(p.split()) for p in text.split("\n    ") if len(p.split()) >= 8]
            if len(paras) >= 5000:
                break
    doc = pl.DataFrame({S.ROW: [0], S.DOC_ID: ["big"], S.TEXT: ["\n\n".join(paras[:5000])]})
    passages = segment(normalise(doc))
    assert passages.height == 5000
    cands, *_ = candidate_pairs(passages, PairsConfig())
    assert len(cands) < 0.005 * 5000 * 4999 / 2
    result = find_pairs(passages, PairsConfig(batch_passages=1000))  # one document is never split
    assert (result[S.P_ROLE] == "verbatim").sum() > 0


def test_small_documents_have_every_pair_checked(reuters_result):
    """In a document of at most ``exact_max_passages`` eligible passages the candidates are, by
    definition, every pair of eligible passages whose lengths pass ``min_length_ratio``, plus the
    neighbours; in a larger one, LSH's and the neighbours (so a 3-passage cap leaves most out)."""
    import itertools

    from dedup.minhash import fold
    from dedup.pairs import candidate_pairs

    p = reuters_result.passages.head(4000)
    cfg = PairsConfig()
    ok = [k != "fragment" and w >= cfg.min_words for k, w in zip(p[S.P_KIND], p[S.P_WORDS])]
    by_doc: dict[int, list[int]] = {}
    for i, (row, good) in enumerate(zip(p[S.ROW], ok)):
        if good:
            by_doc.setdefault(row, []).append(i)
    want, neighbours = set(), set()
    for members in by_doc.values():
        neighbours |= set(zip(members, members[1:]))
        for i, j in itertools.combinations(members, 2):
            a, b = len(fold(p[S.P_TEXT][i])), len(fold(p[S.P_TEXT][j]))
            if min(a, b) >= cfg.min_length_ratio * max(a, b):
                want.add((i, j))
    assert max(map(len, by_doc.values())) <= cfg.exact_max_passages and len(want) > 5000
    got, _ = candidate_pairs(p, cfg)
    assert set(map(tuple, got.tolist())) == want | neighbours
    capped, _ = candidate_pairs(p, PairsConfig(exact_max_passages=3))
    capped = set(map(tuple, capped.tolist()))
    assert neighbours <= capped and len(want - capped) > 0.5 * len(want - neighbours)


def test_pairs_lsh_finds_distant_repeats(seed_text):
    """Every pair of seed passages with shingle Jaccard >= 0.45 is an LSH candidate."""
    import itertools

    from dedup.minhash import char_shingles, fold, jaccard, lsh_pairs, signatures

    cfg = PairsConfig()
    sets = [char_shingles(fold(p), cfg.shingle_chars) for p in seed_text.split("\n\n") if p.strip()]
    found = set(map(tuple, lsh_pairs(signatures(sets, cfg.num_perm, cfg.seed), cfg.bands, cfg.rows).tolist()))
    brute = {(i, j) for i, j in itertools.combinations(range(len(sets)), 2) if jaccard(sets[i], sets[j]) >= 0.45}
    assert len(brute) >= 9 and brute <= found


_PASSAGE_CHARS = st.text(alphabet="ab Z9_.!?:;’'-…\"”)]\n\t\x0b\x1c\x1fé\u00a0\u0301", max_size=30)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PASSAGE_CHARS, max_size=8))
def test_vectorised_kinds_and_words_equal_the_definitions(texts):
    from dedup.config import SegmentConfig
    from dedup.segment import count_words, kinds_and_words, passage_kind

    config = SegmentConfig()
    kinds, words = kinds_and_words(texts, config)
    assert kinds == [passage_kind(t, config) for t in texts]
    assert words == [count_words(t) for t in texts]


def test_vectorised_kinds_and_words_on_reuters_paragraphs():
    from dedup.config import SegmentConfig
    from dedup.segment import count_words, kinds_and_words, paragraph_spans, passage_kind

    from .conftest import REUTERS, need

    config = SegmentConfig()
    texts = [t[s:e] for t in pl.read_ndjson(need(REUTERS)).head(1500)["text"].to_list() for s, e in paragraph_spans(t)]
    kinds, words = kinds_and_words(texts, config)
    assert kinds == [passage_kind(t, config) for t in texts] and words == [count_words(t) for t in texts]


def _word_before_by_definition(text: str, start: int, end: int) -> str:
    """segment._word_before as first written: a $-anchored search over the whole slice."""
    import re

    word = re.search(r"([\w.]+)$", text[start:end])
    return word.group(1).lower().rstrip(".") if word else ""


def _both_ways(text: str) -> tuple[list, list]:
    import importlib

    module = importlib.import_module("dedup.segment")  # the package exports a function of the same name
    fast = module.sentence_spans(text)
    kept, module._word_before = module._word_before, _word_before_by_definition
    try:
        return fast, module.sentence_spans(text)
    finally:
        module._word_before = kept


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["Mr.", "U.S.", "x", "a" * 45 + ".", "." * 41, "said.", "Biden!", "\n\n", "  ", "Inc.", "e.g."]),
                max_size=30))
def test_sentence_spans_equal_their_definition(words):
    fast, slow = _both_ways(" ".join(words))
    assert fast == slow


def test_sentence_spans_on_reuters_equal_their_definition():
    from .conftest import REUTERS, need

    for text in pl.read_ndjson(need(REUTERS)).head(1500)["text"].to_list():
        fast, slow = _both_ways(text)
        assert fast == slow


def test_batched_sort_ratios_equal_the_pair_by_pair_call(reuters_result):
    """The batched similarity of the candidates (one C call per cutoff) gives what
    ``fuzz.token_sort_ratio`` with that cutoff gives pair by pair, on neighbouring Reuters passages
    and on each passage against itself."""
    import numpy as np
    from rapidfuzz import fuzz

    from dedup.pairs import _sort_ratios

    texts = reuters_result.passages[S.P_TEXT].head(3000).to_list()
    a, b = texts[:-1] + texts[:50], texts[1:] + texts[:50]
    cutoff = np.where(np.arange(len(a)) % 3 == 0, 68.0, np.where(np.arange(len(a)) % 3 == 1, 80.0, 0.0))
    got = _sort_ratios(a, b, cutoff)
    want = [fuzz.token_sort_ratio(x, y, score_cutoff=c) for x, y, c in zip(a, b, cutoff.tolist())]
    assert got.tolist() == want
    assert (got[-50:] == 100.0).all() and (got > 0).sum() > 100  # identical texts, and real scores among the rest
