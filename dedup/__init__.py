"""dedup: clean and deduplicate scraped news corpora.

The public API: :func:`clean` runs the whole pipeline; each stage is a function over polars frames
that adds columns and drops no rows, usable alone.
"""

import sys
import types

# What each public name is imported from. The names are imported when first asked for (PEP 562),
# so that ``python -m dedup`` reads its arguments and starts its worker processes before it pays
# for polars, numpy and the stage modules (half a second on this machine).
_PUBLIC = {
    "clean": "pipeline", "Result": "pipeline",
    "load_config": "config", "PipelineConfig": "config",
    "normalise": "normalise", "normalise_text": "normalise",
    "segment": "segment",
    "find_pairs": "pairs",
    "cluster_documents": "cluster",
    "score_passages": "garble_stage",
    "score_pair": "garble", "score_text": "garble",
    "DedupError": "errors", "ConfigError": "errors", "InputError": "errors",
}


def __getattr__(name: str):
    if name == "__version__":  # asked for by a run's checkpoint fingerprint: importlib.metadata costs 25 ms
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("dedup")
        except PackageNotFoundError:  # running from a source tree that is not installed
            value = "0.0.0+source"
        globals()[name] = value
        return value
    if name in _PUBLIC:
        from importlib import import_module

        value = getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value  # asked once
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


class _Package(types.ModuleType):
    """This package, whose public names stay the functions: importing the submodules
    ``dedup.normalise`` and ``dedup.segment`` would otherwise set the package's attributes of those
    names to the modules (as the import system does), hiding the functions of the same names."""

    def __setattr__(self, name: str, value) -> None:
        if name in _PUBLIC and isinstance(value, types.ModuleType):
            return  # the submodule stays in sys.modules; the name stays the function
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


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
