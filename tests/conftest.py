from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
SEED = ROOT / "seeds" / "000_729590aafbbb308c.txt"
REUTERS = SHARED / "reuters" / "dev.jsonl.gz"
FTFY_CASES = SHARED / "ftfy-cases"
DATA = Path(__file__).resolve().parent / "data"


def need(path: Path) -> Path:
    """Skip cleanly when the shared development data is not beside the project."""
    if not path.exists():
        pytest.skip(f"{path} is not present (the shared data folder sits beside the project)")
    return path


@pytest.fixture(scope="session")
def seed_text() -> str:
    return SEED.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def seed_result():
    from dedup import clean

    return clean(SEED)


@pytest.fixture(scope="session")
def reuters_result():
    from dedup import clean

    return clean(need(REUTERS))


def reuters_head(tmp: Path, n: int) -> Path:
    """The first ``n`` Reuters dev stories as a JSONL file (real exact and near duplicates among them)."""
    import gzip

    out = tmp / f"reuters-{n}.jsonl"
    with gzip.open(need(REUTERS), "rt", encoding="utf-8") as src, out.open("w", encoding="utf-8") as dst:
        for k, line in enumerate(src):
            if k >= n:
                break
            dst.write(line)
    return out
