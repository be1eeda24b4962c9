from __future__ import annotations

import itertools
import random

import numpy as np
import polars as pl
import pytest
from datasketch import MinHash, MinHashLSH

from dedup import schema as S
from dedup.cluster import DisjointSet, cluster_documents, cluster_inputs, component_roots, parse_date
from dedup.config import ClusterConfig
from dedup.minhash import char_shingles, fold, jaccard, lsh_pairs, shingle_hash32, signatures, word_shingles
from dedup.normalise import normalise


def _seed_sets(seed_text):
    return [char_shingles(fold(p), 5) for p in seed_text.split("\n\n") if p.strip()]


def test_lsh_pairs_equal_datasketch_lsh(seed_text):
    sets = _seed_sets(seed_text)
    sig = signatures(sets, 128, 1)
    for bands, rows in ((64, 2), (32, 4), (16, 8)):
        ours = set(map(tuple, lsh_pairs(sig, bands, rows).tolist()))
        mins = MinHash.bulk(
            [[s.encode() for s in x] for x in sets], num_perm=128, seed=1, scheme="affine32", hashfunc=shingle_hash32
        )
        lsh = MinHashLSH(num_perm=128, params=(bands, rows))
        for i, m in enumerate(mins):
            lsh.insert(i, m)
        theirs = {(min(i, j), max(i, j)) for i, m in enumerate(mins) for j in lsh.query(m) if i != j}
        assert ours == theirs


def test_signatures_reproducible_and_seeded(seed_text):
    sets = _seed_sets(seed_text)[:20]
    a, b, c = signatures(sets, 64, 7), signatures(sets, 64, 7), signatures(sets, 64, 8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_minhash_estimate_near_exact_jaccard(seed_text):
    sets = _seed_sets(seed_text)
    sig = signatures(sets, 256, 3)
    errors = []
    for i, j in itertools.combinations(range(0, len(sets), 3), 2):
        est = float(np.mean(sig[i] == sig[j]))
        errors.append(abs(est - jaccard(sets[i], sets[j])))
    # standard error at 256 permutations is at most 0.031
    assert np.mean(errors) < 0.03
    assert np.quantile(errors, 0.99) < 0.12


def test_lsh_finds_what_brute_force_finds(seed_text):
    sets = _seed_sets(seed_text)
    sig = signatures(sets, 128, 1)
    found = set(map(tuple, lsh_pairs(sig, 32, 4).tolist()))
    # (1/32)^(1/4) = 0.42 is the S-curve's midpoint; 0.05 above the verification threshold of 0.6
    brute = {(i, j) for i, j in itertools.combinations(range(len(sets)), 2) if jaccard(sets[i], sets[j]) >= 0.65}
    assert brute and brute <= found


def test_big_bucket_becomes_a_chain():
    sig = np.zeros((200, 8), dtype=np.uint32)  # all identical: one bucket per band
    pairs = lsh_pairs(sig, 2, 4, max_bucket=10)
    assert len(pairs) == 199
    ds = DisjointSet(200)
    for i, j in pairs.tolist():
        ds.union(i, j)
    assert len({ds.find(i) for i in range(200)}) == 1


def _roots_by_disjoint_set(edges: list[tuple[int, int]]) -> dict[int, int]:
    """The reference: each row on an edge and its component's smallest row, from the union-find."""
    nodes = sorted({x for e in edges for x in e})
    index = {x: k for k, x in enumerate(nodes)}
    ds = DisjointSet(len(nodes))
    for a, b in edges:
        ds.union(index[a], index[b])
    return {x: nodes[ds.find(index[x])] for x in nodes}


def _graphs():
    rng = np.random.default_rng(7)
    yield "none", []
    yield "one edge", [(5, 3)]
    yield "a chain, largest rows first", [(k + 1, k) for k in range(500, 0, -1)]
    yield "a chain, every other link first", [(k, k + 1) for k in range(0, 300, 2)] + [(k, k + 1) for k in range(1, 300, 2)]
    yield "a star on its largest row", [(1000, k) for k in range(0, 1000, 7)]
    yield "repeats and loops", [(4, 9), (9, 4), (4, 9), (2, 2), (9, 30)]
    for n, m in ((60, 40), (2000, 1500), (5000, 20000)):  # sparse (many small clusters) to one giant one
        rows = rng.choice(10**9, size=n, replace=False)
        yield f"random {n} rows, {m} edges", [tuple(map(int, rows[rng.integers(0, n, 2)])) for _ in range(m)]


@pytest.mark.parametrize("name, edges", list(_graphs()), ids=[g[0] for g in _graphs()])
def test_component_roots_equal_disjoint_set(name, edges):
    nodes, roots = component_roots(np.asarray(edges, dtype=np.int64).reshape(-1, 2))
    assert nodes.tolist() == sorted({x for e in edges for x in e})
    assert dict(zip(nodes.tolist(), roots.tolist())) == _roots_by_disjoint_set(edges)


def test_groups_keep_pairs_apart():
    sig = np.zeros((4, 8), dtype=np.uint32)
    pairs = lsh_pairs(sig, 2, 4, groups=np.array([0, 0, 1, 1]))
    assert pairs.tolist() == [[0, 1], [2, 3]]


def _docs(texts, dates=None):
    frame = pl.DataFrame(
        {S.ROW: list(range(len(texts))), S.DOC_ID: [f"d{i}" for i in range(len(texts))], S.TEXT: texts}
    ).with_columns(pl.col(S.ROW).cast(pl.Int64))
    if dates is not None:
        frame = frame.with_columns(pl.Series("date", dates))
    return normalise(frame)


BASE = ("The central bank raised its key lending rate by half a point on Tuesday, citing "
        "inflation that has run above target for six months, and said further moves would depend on wages. ")


@pytest.mark.parametrize(
    "keep,expected",
    [("first", "d0"), ("longest", "d2"), ("earliest", "d1")],
)
def test_keep_rules(keep, expected):
    texts = [BASE * 3, BASE * 3 + "Markets fell.", BASE * 3 + "Markets fell sharply in late trade today.", "Unrelated text about farming and grain exports in the spring."]
    dates = ["2020-01-03", "02-JAN-2020 10:00:00.00", "2020-01-05", None]
    out, stats = cluster_documents(_docs(texts, dates), ClusterConfig(keep=keep))
    members = out.filter(pl.col(S.CLUSTER_ID).is_not_null())
    assert members[S.DOC_ID].to_list() == ["d0", "d1", "d2"]
    kept = members.filter(pl.col(S.DUPLICATE_OF).is_null())[S.DOC_ID].to_list()
    assert kept == [expected]
    assert set(members[S.DUPLICATE_OF].drop_nulls().to_list()) == {expected}
    assert out.filter(pl.col(S.DOC_ID) == "d3")[S.CLUSTER_ID][0] is None


def test_exact_copies_are_exact():
    out, stats = cluster_documents(_docs([BASE, BASE.replace(" ", "  "), BASE.upper()]))
    assert out[S.DUP_KIND].to_list() == [None, "exact", "near"]
    assert stats["exact_duplicates"] == 1


def test_parse_date():
    assert parse_date("26-FEB-1987 15:01:01.79").year == 1987
    assert parse_date("2021-12-07").day == 7
    assert parse_date("not a date") is None


@pytest.fixture(scope="module")
def reuters_docs():
    from .conftest import REUTERS, need

    frame = pl.read_ndjson(need(REUTERS)).rename({"id": S.DOC_ID}).with_row_index(S.ROW)
    return normalise(frame.with_columns(pl.col(S.ROW).cast(pl.Int64)))


def test_reuters_identical_bodies_grouped_completely(reuters_result):
    d = reuters_result.documents
    keyed = d.with_columns(pl.col(S.TEXT_NORM).str.replace_all(r"\s+", " ").str.strip_chars().alias("k"))
    groups = keyed.group_by("k").agg(pl.col(S.CLUSTER_ID).n_unique().alias("c"), pl.col(S.CLUSTER_ID).null_count().alias("nulls"), pl.len().alias("n")).filter(pl.col("n") > 1)
    assert groups.height == 169  # identical up to whitespace: 169 groups in Reuters dev
    assert (groups["c"] == 1).all() and (groups["nulls"] == 0).all()
    raw = d.group_by(S.TEXT).agg(pl.len().alias("n")).filter(pl.col("n") > 1)
    assert raw.height == 163  # byte-identical bodies, all inside those groups
    assert reuters_result.stats["cluster"]["exact_duplicates"] == 169


def test_reuters_near_duplicates_match_brute_force(reuters_docs):
    """On a sample that includes every clustered document, LSH + verification finds every pair
    that all-pairs exact Jaccard puts 0.05 above the threshold."""
    config = ClusterConfig()
    out, _ = cluster_documents(reuters_docs, config)
    clustered = out.filter(pl.col(S.CLUSTER_ID).is_not_null())[S.ROW].to_list()
    rng = random.Random(5)
    sample_rows = sorted(set(clustered) | set(rng.sample(range(out.height), 600)))
    sample = reuters_docs.filter(pl.col(S.ROW).is_in(sample_rows))
    got, _ = cluster_documents(sample, config)
    folded = [fold(t) for t in sample[S.TEXT_NORM].to_list()]
    shingles = [word_shingles(f, config.shingle_words) for f in folded]
    cid = got[S.CLUSTER_ID].to_list()
    missed = 0
    strong = 0
    for i, j in itertools.combinations(range(len(folded)), 2):
        if jaccard(shingles[i], shingles[j]) >= config.threshold + 0.05:
            strong += 1
            if cid[i] is None or cid[i] != cid[j]:
                missed += 1
    assert strong > 100
    assert missed / strong <= 0.01


def test_cluster_inputs_made_in_jobs_give_the_same_clusters(reuters_docs):
    """The corpus stage given each document's exact key and signature made beforehand, in jobs of
    any size (as the pipeline's jobs make them), returns the frame it returns computing them itself;
    and it does read them (zeroed signatures change its candidates)."""
    config = ClusterConfig()
    docs = reuters_docs.with_columns(pl.lit(None, dtype=pl.String).alias(S.DROP_REASON))
    want, want_stats = cluster_documents(docs, config)
    parts = [cluster_inputs(docs.slice(lo, 1700), config, threads=1) for lo in range(0, docs.height, 1700)]
    made = pl.concat(parts)
    got, stats = cluster_documents(made, config)
    assert got.equals(want) and stats["clusters"] == want_stats["clusters"] > 300
    zeroed = made.with_columns(pl.Series(S.SIGNATURE, np.zeros((made.height, config.num_perm), dtype=np.uint32)))
    _, odd = cluster_documents(zeroed, config, threads=1)
    assert odd["candidates"] != want_stats["candidates"]


def test_cluster_result_independent_of_order(reuters_docs):
    sub = reuters_docs.head(3000)
    a, _ = cluster_documents(sub)
    shuffled = sub.sample(fraction=1.0, shuffle=True, seed=3).with_columns(pl.col(S.ROW).alias("_orig"))
    b, _ = cluster_documents(shuffled)

    def groups(frame):
        return {frozenset(g) for g in frame.filter(pl.col(S.CLUSTER_ID).is_not_null()).group_by(S.CLUSTER_ID).agg(pl.col(S.DOC_ID))[S.DOC_ID].to_list()}

    assert groups(a) == groups(b)


def test_short_templated_notices_are_not_near_duplicates(reuters_result):
    """Reuters dividend notices are 15 words that differ in one figure (and in the company, which
    only the title names): they must not cluster; the first reviewed sample had four such pairs."""
    d = reuters_result.documents
    cid = dict(zip(d[S.DOC_ID], d[S.CLUSTER_ID]))
    for a, b in (("reuters-2579", "reuters-1326"), ("reuters-4144", "reuters-1708"), ("reuters-8269", "reuters-5914")):
        assert cid[a] is None or cid[a] != cid[b]
    assert reuters_result.stats["cluster"]["near_duplicates"] == 169


@pytest.mark.parametrize("kind,k,reference", [("chars", 5, char_shingles), ("words", 3, word_shingles)])
def test_fast_shingles_and_signatures_equal_the_reference(seed_text, kind, k, reference):
    """The vectorised path against the slow one: the same shingle hashes as hashing each string
    shingle, and the same signatures as datasketch's own MinHash with that hash function."""
    from dedup.minhash import ShingleSets, fast_signatures, shingle_hash

    texts = [fold(p) for p in seed_text.split("\n\n")] + ["", "ab", "one two", "ünïcödé ’ text"]
    sets = ShingleSets.from_spans(texts, kind, k)
    string_sets = [reference(t, k) for t in texts]
    for i, shingles in enumerate(string_sets):
        assert sets.get(i).tolist() == sorted(shingle_hash(s) for s in shingles)
    assert np.array_equal(fast_signatures(sets, 128, 1, chunk=777), signatures(string_sets, 128, 1))
    for i, j in ((7, 8), (12, 13), (34, 50), (0, 1)):
        assert sets.jaccard(i, j) == pytest.approx(jaccard(string_sets[i], string_sets[j]))
    # every pair at once (empty sets, a text with itself, both orders) equals the pair-by-pair definition
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(texts), 300), rng.integers(0, len(texts), 300)
    i, j = np.r_[i, 3, len(texts) - 4, len(texts) - 4], np.r_[j, 3, len(texts) - 3, 0]
    assert sets.jaccards(i, j).tolist() == [sets.jaccard(a, b) for a, b in zip(i.tolist(), j.tolist())]


def test_fast_signatures_on_reuters_equal_datasketch():
    from dedup.minhash import ShingleSets, fast_signatures

    from .conftest import REUTERS, need

    texts = [fold(t) for t in pl.read_ndjson(need(REUTERS)).head(300)["text"].to_list()]
    fast = fast_signatures(ShingleSets.from_spans(texts, "words", 3), 64, 9)
    assert np.array_equal(fast, signatures([word_shingles(t, 3) for t in texts], 64, 9))


@pytest.mark.parametrize("num_perm,seed", [(1, 0), (128, 1), (256, 42), (64, 2**31 - 1)])
def test_permutations_are_datasketchs(num_perm, seed):
    from datasketch import MinHash

    from dedup.minhash import SCHEME, permutations

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME).permutations
    mine = permutations(num_perm, seed)
    assert all(x.dtype == np.uint32 for x in mine)
    assert np.array_equal(mine[0], a) and np.array_equal(mine[1], b)


def test_a_run_does_not_import_datasketch(tmp_path):
    # datasketch (with scipy) is a third of a second per process; only the reference path needs it
    import subprocess
    import sys

    code = ("import sys, dedup, dedup.pipeline, dedup.cluster;"
            "from dedup.minhash import ShingleSets, fast_signatures;"
            "fast_signatures(ShingleSets.from_spans(['a b c d'], 'words', 3), 8, 1);"
            "print('datasketch' in sys.modules, 'scipy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_fast_path_on_empty_batches():
    from dedup.minhash import ShingleSets, fast_signatures

    for texts in ([], [""], ["", ""]):
        for kind in ("chars", "words"):
            sets = ShingleSets.from_spans(texts, kind, 3)
            assert len(sets) == len(texts)
            assert fast_signatures(sets, 16, 1).shape == (len(texts), 16)


def _buckets_by_hand(keys: np.ndarray, groups: np.ndarray, max_bucket: int) -> list[tuple[int, int]]:
    """The definition of the LSH candidates, one dict per band: every pair of a bucket of at most
    ``max_bucket`` rows, the chain of a larger one's sorted members."""
    found = set()
    for band in range(keys.shape[1]):
        buckets: dict[tuple, list[int]] = {}
        for i in range(keys.shape[0]):
            buckets.setdefault((int(groups[i]), int(keys[i, band])), []).append(i)
        for members in buckets.values():
            if len(members) <= max_bucket:
                found |= set(itertools.combinations(members, 2))
            else:
                found |= set(zip(members, members[1:]))
    return sorted(found)


@pytest.mark.parametrize("seed", range(6))
def test_bucket_pairs_equal_their_definition(seed):
    from dedup.minhash import bucket_pairs

    rng = np.random.default_rng(seed)
    n, bands = int(rng.integers(2, 300)), int(rng.integers(1, 6))
    keys = rng.integers(0, int(rng.integers(2, 40)), size=(n, bands)).astype(np.uint64)
    groups = rng.integers(0, 3, size=n)
    max_bucket = int(rng.integers(2, 12))
    got = bucket_pairs(lambda b: keys[:, b], n, bands, groups, max_bucket)
    assert [tuple(p) for p in got.tolist()] == _buckets_by_hand(keys, groups, max_bucket)


def test_bucket_pairs_with_groups_survive_a_mixed_key_collision():
    """Rows of two groups whose keys mix to the same value still bucket by (group, key)."""
    from dedup.minhash import _GROUP_MIX, bucket_pairs

    k = np.uint64(12345)
    keys = np.array([k, k ^ _GROUP_MIX, k, k ^ _GROUP_MIX, k], dtype=np.uint64)[:, None]
    groups = np.array([0, 1, 0, 1, 2])
    got = bucket_pairs(lambda b: keys[:, b], 5, 1, groups)
    assert [tuple(p) for p in got.tolist()] == _buckets_by_hand(keys, groups, 10**9) == [(0, 2), (1, 3)]


def test_jaccards_survive_a_mixed_key_collision():
    """Pair 1's hash ``k ^ _GROUP_MIX`` mixes to pair 0's ``k``: the batched Jaccard still keeps the
    two pairs' hashes apart and equals the pair-by-pair definition."""
    from dedup.minhash import _GROUP_MIX, ShingleSets

    k, other = np.uint64(12345), np.uint64(777)
    # texts: 0 = {k}, 1 = {k, other}, 2 = {k ^ MIX}, 3 = {other}, 4 = {} ; pairs (0, 1) and (2, 3), (4, 4)
    hashes = np.array([k, k, other, k ^ _GROUP_MIX, other], dtype=np.uint64)
    sets = ShingleSets(hashes, np.array([0, 1, 3, 4, 5, 5]))
    i, j = np.array([0, 2, 4]), np.array([1, 3, 4])
    got = sets.jaccards(i, j).tolist()
    assert got == [sets.jaccard(a, b) for a, b in zip(i.tolist(), j.tolist())] == [0.5, 0.0, 0.0]


# --- the vectorised helpers against their one-at-a-time definitions -----------------------------

@pytest.fixture(scope="module")
def reuters_texts() -> list[str]:
    import gzip
    import json

    from .conftest import REUTERS, need

    with gzip.open(need(REUTERS), "rt", encoding="utf-8") as fh:
        return [json.loads(line)["text"] or "" for _, line in zip(range(5000), fh)]


_ODD_TEXTS = ["", "   ", "a", "One two", "Ünïcødé  text – with “quotes” and İstanbul ǅ", "x\u00a0y\tz\n\nw ", "ÀB_c9 d-e",
              "ﬁne ﬂour", "Straße STRASSE", "日本語のテキスト 123", "emoji 🙂 here", None]


def test_fold_all_is_fold_on_real_and_odd_texts(reuters_texts):
    from dedup.minhash import fold_all

    texts = reuters_texts[:3000] + _ODD_TEXTS
    want = [fold(t or "") for t in texts]
    assert fold_all(texts, 1) == want
    assert fold_all(pl.Series(texts, dtype=pl.String), 2) == want  # sliced across two threads


def test_whitespace_key_is_the_plain_replacement():
    from dedup.cluster import whitespace_key

    col = pl.Series(_ODD_TEXTS + ["a b", " a b", "a  b", "a b\n", "a\u00a0b", "a\u3000", "\u2009a", "é\u0085b", "é b ", "é\tb",
                     "a\x1cb"], dtype=pl.String)
    want = col.fill_null("").str.replace_all(r"\s+", " ").str.strip_chars()
    assert whitespace_key(col).to_list() == want.to_list()


@pytest.mark.parametrize("cap", [1, 3, 30, 200])
def test_word_counts_are_the_whole_count_capped(reuters_texts, cap):
    """word_counts counts a prefix where it settles the count up to the cap: min(full count, cap)."""
    import re

    from dedup.cluster import word_counts

    texts = reuters_texts[:3000] + _ODD_TEXTS + ["-- " * 300 + "a " * cap, "é" * 9 + " x" * (cap - 1), "a" * 5000]
    want = [min(len(re.findall(r"\w+", t or "")), cap) for t in texts]
    assert word_counts(pl.Series(texts, dtype=pl.String), cap).tolist() == want


def test_batched_verification_and_links_equal_the_pair_definitions(reuters_texts):
    """verify_pairs and duplicate_links decide as _verified and duplicate_link, pair by pair, on the
    LSH candidates of real stories (near the threshold, so exact Jaccard is exercised) and on
    exact copies that differ only in whitespace."""
    from dedup.cluster import _verified, duplicate_link, duplicate_links, signatures_of, verify_pairs
    from dedup.minhash import fold_all

    texts = reuters_texts[:4000]
    texts = texts + [" ".join(t.split()) + "  " for t in texts[:50]] + [t.replace(".", ",") for t in texts[50:100]]
    config = ClusterConfig()
    sig = signatures_of(texts, config, 2)
    cands = lsh_pairs(sig, config.bands, config.rows)
    assert len(cands) > 100
    est = (sig[cands[:, 0]] == sig[cands[:, 1]]).mean(axis=1)
    folded = fold_all(texts)
    fa, fb = [folded[i] for i in cands[:, 0]], [folded[j] for j in cands[:, 1]]
    want = [_verified(a, b, e, config) for a, b, e in zip(fa, fb, est)]
    margin = 3.5 * 0.5 / config.num_perm**0.5
    assert ((est > config.threshold - margin) & (est < config.threshold + margin)).sum() > 10
    assert verify_pairs(fa, fb, est, config, 2).tolist() == want
    assert verify_pairs(fa, fb, est, config, 1).tolist() == want
    a, b = [texts[i] for i in cands[:, 0]], [texts[j] for j in cands[:, 1]]
    kinds, sims = duplicate_links(a, b, 2)
    assert list(zip(kinds, sims)) == [duplicate_link(x, y) for x, y in zip(a, b)]
    assert {"exact", "near"} <= set(kinds)


def test_signatures_do_not_depend_on_threads(reuters_texts):
    from dedup.cluster import signatures_of

    config = ClusterConfig()
    texts = reuters_texts[:2500] + [t or "" for t in _ODD_TEXTS]
    one = signatures_of(texts, config, 1)
    assert np.array_equal(one, signatures_of(pl.Series(texts), config, 2))
    ref = signatures([word_shingles(fold(t), config.shingle_words) for t in texts[-40:]], config.num_perm, config.seed)
    assert np.array_equal(one[-40:], ref)


def test_cluster_links_are_duplicate_link_of_each_member_and_its_kept_copy(reuters_texts):
    """The cluster columns name, for every copy, what duplicate_link says of it and the copy kept,
    whether its ratio was computed for the link or reused from verification."""
    from dedup.cluster import duplicate_link

    base = reuters_texts[:1500]
    rnd = random.Random(5)
    near = []
    for t in base[:300]:
        words = t.split()
        if len(words) > 60:
            k = rnd.randrange(len(words))
            near.append(" ".join(words[:k] + ["really"] + words[k:]))
    texts = base + near + ["  " + t for t in base[300:340]]
    frame = pl.DataFrame({S.ROW: range(len(texts)), S.DOC_ID: [f"d{i}" for i in range(len(texts))], S.TEXT_NORM: texts})
    out, stats = cluster_documents(frame, ClusterConfig())
    copies = out.filter(pl.col(S.DUPLICATE_OF).is_not_null())
    assert stats["near_duplicates"] >= 100 and stats["exact_duplicates"] >= 40
    for row, kept, kind, sim in copies.select(S.ROW, S.KEPT_ROW, S.DUP_KIND, S.DUP_SIMILARITY).iter_rows():
        assert (kind, sim) == duplicate_link(texts[row], texts[kept]), row
