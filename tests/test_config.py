from __future__ import annotations

import tomllib

import pytest

from dedup.config import FIXER_NAMES, PipelineConfig, load_config
from dedup.errors import ConfigError
from dedup.normalise import FIXERS

from .conftest import ROOT


def test_default_toml_equals_code_defaults():
    data = tomllib.loads((ROOT / "configs" / "default.toml").read_text(encoding="utf-8"))
    assert data == PipelineConfig().to_dict()
    assert load_config(ROOT / "configs" / "default.toml") == PipelineConfig()


def test_fixer_names_match_registry():
    assert tuple(FIXERS) == FIXER_NAMES


def test_every_field_is_documented():
    import dataclasses

    for section in dataclasses.fields(PipelineConfig):
        cls = section.default_factory
        for f in dataclasses.fields(cls):
            assert f.name in (cls.__doc__ or ""), f"{section.name}.{f.name} is not in the docstring"


def test_overrides():
    cfg = load_config(None, ["cluster.keep=longest", "pairs.min_words=5", "cluster.threshold=1", "normalise.fixers=['ftfy']"])
    assert cfg.cluster.keep == "longest"
    assert cfg.pairs.min_words == 5
    assert cfg.cluster.threshold == 1.0
    assert cfg.normalise.fixers == ("ftfy",)


@pytest.mark.parametrize(
    "override,message",
    [
        ("cluster.kep=first", "unknown config key cluster.kep; keys of [cluster] are: enabled, shingle_words, num_perm, bands, rows, seed, threshold, min_similarity, keep, max_bucket, min_words"),
        ("clusters.keep=first", "unknown config section [clusters]; sections are: input, normalise, segment, pairs, cluster, garble, engine, output"),
        ("cluster.keep=newest", "cluster.keep = 'newest' is not allowed; use one of: first, earliest, longest"),
        ("cluster.threshold=1.5", "cluster.threshold = 1.5 is out of range; use a value from 0.0 to 1.0"),
        ("pairs.bands=100", "pairs.bands * pairs.rows = 100 * 3 = 300 exceeds pairs.num_perm = 128; lower bands or rows, or raise num_perm"),
        ("pairs.min_words=many", "pairs.min_words = 'many' must be int, not str"),
        ("normalise.fixers=['ftfy','spelling']", "normalise.fixers = 'spelling' is not allowed; use one of: ftfy, quotes, whitespace"),
        ("keep", "--set 'keep' is not of the form section.key=value, e.g. --set cluster.keep=longest"),
    ],
)
def test_bad_config_messages(override, message):
    with pytest.raises(ConfigError) as exc:
        load_config(None, [override])
    assert str(exc.value) == message


def test_missing_and_broken_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[cluster\nkeep = 1")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(bad)


def test_engine_shorthand(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('engine = "spark"\n[cluster]\nkeep = "longest"\n', encoding="utf-8")
    loaded = load_config(cfg)
    assert loaded.engine.name == "spark" and loaded.engine.master == "local[2]" and loaded.cluster.keep == "longest"
    with pytest.raises(ConfigError, match=r"engine.name = 'flink' is not allowed; use one of: polars, spark"):
        load_config(None, ["engine.name=flink"])
