"""Seeded news-like corpora with known near duplicates, built from real Reuters sentences.

Originals are made of sentences resampled from ``reuters/dev.jsonl.gz`` until they reach the target
length; a share of the documents are copies of an original with word edits (substitution, deletion,
insertion) at a known rate. The ground truth is the original each document copies (itself for an
original), saved beside the corpus.
"""

from __future__ import annotations

import gzip
import json
import random
import re
from pathlib import Path

import polars as pl

EDIT_RATES = (0.01, 0.02, 0.05, 0.10)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def reuters_sentences(path: Path, min_words: int = 5) -> list[str]:
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            text = " ".join(json.loads(line)["text"].replace("&lt;", "<").replace("&#3;", "").split())
            out += [s for s in _SENTENCE.split(text) if len(s.split()) >= min_words]
    return out


def make_corpus(sentences: list[str], n_docs: int, seed: int, words: int = 300, dup_share: float = 0.3) -> pl.DataFrame:
    """``n_docs`` documents: ``id``, ``text``, ``truth`` (the id of the original), ``edit_rate``."""
    rng = random.Random(seed)
    vocab = sorted({w for s in sentences[:20000] for w in s.split()})
    n_dup = int(n_docs * dup_share)
    n_orig = n_docs - n_dup
    ids, texts, truth, rates = [], [], [], []
    for i in range(n_orig):
        parts, count = [], 0
        while count < words:
            s = sentences[rng.randrange(len(sentences))]
            parts.append(s)
            count += len(s.split())
        ids.append(f"doc-{i}")
        texts.append(" ".join(parts))
        truth.append(f"doc-{i}")
        rates.append(0.0)
    for k in range(n_dup):
        src = rng.randrange(n_orig)
        rate = EDIT_RATES[k % len(EDIT_RATES)]
        tokens = texts[src].split()
        edited = []
        for tok in tokens:
            r = rng.random()
            if r < rate / 3:
                continue  # deletion
            if r < 2 * rate / 3:
                edited.append(vocab[rng.randrange(len(vocab))])  # substitution
                continue
            edited.append(tok)
            if r < rate:
                edited.append(vocab[rng.randrange(len(vocab))])  # insertion
        ids.append(f"doc-{n_orig + k}")
        texts.append(" ".join(edited))
        truth.append(f"doc-{src}")
        rates.append(rate)
    order = list(range(n_docs))
    rng.shuffle(order)
    return pl.DataFrame(
        {
            "id": [ids[i] for i in order],
            "text": [texts[i] for i in order],
            "truth": [truth[i] for i in order],
            "edit_rate": [rates[i] for i in order],
        }
    )


def news_file(reuters: Path, path: Path, target_bytes: int, seed: int = 3) -> int:
    """A JSONL corpus of about ``target_bytes``, written as it is made (any size, little memory):
    documents of 150-450 words resampled from Reuters sentences; every fifth is a copy of one of
    the 50 documents before it with three words changed. Returns the number of documents."""
    sentences = [s.strip() for line in gzip.open(reuters, "rt", encoding="utf-8")
                 for s in json.loads(line)["text"].replace("\n", " ").split(". ") if len(s.split()) >= 6]
    rng = random.Random(seed)
    written, k, recent = 0, 0, []
    with path.open("w", encoding="utf-8") as fh:
        while written < target_bytes:
            if k % 5 == 4 and recent:
                words = rng.choice(recent).split()
                for _ in range(3):
                    words[rng.randrange(len(words))] = rng.choice(["new", "said", "bank", "rose"])
                doc = " ".join(words)
            else:
                parts, n = [], rng.randint(150, 450)
                while sum(len(p.split()) for p in parts) < n:
                    parts.append(rng.choice(sentences))
                doc = ". ".join(parts) + "."
                recent = (recent + [doc])[-50:]
            line = json.dumps({"id": f"news-{k}", "text": doc}) + "\n"
            fh.write(line)
            written += len(line.encode("utf-8"))
            k += 1
    return k
