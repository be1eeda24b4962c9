"""dedup: clean and deduplicate scraped news corpora.

The public API: :func:`clean` runs the whole pipeline; each stage is a function over polars frames
that adds columns and drops no rows, usable alone.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dedup")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

from .cluster import cluster_documents
from .config import PipelineConfig, load_config
from .errors import ConfigError, DedupError, InputError
from .garble import score_pair, score_text
from .garble_stage import score_passages
from .normalise import normalise, normalise_text
from .pairs import find_pairs
from .pipeline import Result, clean
from .segment import segment

__all__ = [
    "clean",
    "load_config",
    "PipelineConfig",
    "Result",
    "normalise",
    "normalise_text",
    "segment",
    "find_pairs",
    "cluster_documents",
    "score_passages",
    "score_pair",
    "score_text",
    "DedupError",
    "ConfigError",
    "InputError",
]
