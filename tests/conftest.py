from __future__ import annotations

import re
import subprocess
import sys
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


def cli(*args, env=None) -> subprocess.CompletedProcess:
    """``python -m dedup ARGS`` in a fresh process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "dedup", *map(str, args)], capture_output=True, env=env, cwd=ROOT)


def without_seconds(text: str) -> str:
    """stats.json and report.md name wall times; everything else in them must repeat."""
    text = re.sub(r'"(\w*seconds\w*)": [0-9.]+', r'"\1": 0', text)
    text = re.sub(r"\| (\w+) \| [0-9.]+ \|", r"| \1 | 0 |", text)
    return re.sub(r"Scoring took [0-9.]+ s, [0-9.]+% of the run", "Scoring took 0 s", text)


def kill_after_batches(src: Path, out: Path, setting: list[str], batches: int) -> int:
    """Start ``dedup clean src -o out SETTING``, ``kill -9`` it once ``batches`` batches are
    checkpointed, check that it left no manifest, and return how many batches it finished."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "dedup", "clean", str(src), "-o", str(out), "-q", *setting], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = out / ".dedup-work"
    deadline = time.time() + 120
    # batches finish in any order (this process and the workers share them): count the finished ones
    while len(list(work.glob("batch-*.json"))) < batches and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and not (out / "stats.json").exists()
    return len(list(work.glob("batch-*.json")))
