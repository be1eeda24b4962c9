"""Configuration: one frozen dataclass per stage, nested in :class:`PipelineConfig`.

Every field has a default; ``configs/default.toml`` carries the same keys and values (a test proves it).
Values are validated when a config is built, and a bad one raises :class:`ConfigError` naming the key,
the value received and what is allowed.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from .errors import ConfigError

FIXER_NAMES = ("ftfy", "quotes", "whitespace")  # kept equal to normalise.FIXERS by a test


def _choice(section: str, key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(
            f"{section}.{key} = {value!r} is not allowed; use one of: {', '.join(map(str, allowed))}"
        )


def _range(section: str, key: str, value: float, lo: float, hi: float) -> None:
    if not (lo <= value <= hi):
        raise ConfigError(f"{section}.{key} = {value!r} is out of range; use a value from {lo} to {hi}")


@dataclass(frozen=True)
class InputConfig:
    """How records are read.

    id_field: field holding the record id; a record without one gets ``<source>-<row>``.
    text_field: field holding the text to clean.
    date_field: field holding a date, used by ``cluster.keep = "earliest"`` (optional in the data).
    format: ``auto`` (from the file name), ``jsonl``, ``parquet``, ``csv`` or ``txt``.
    on_error: ``raise`` stops at the first malformed record with its file and line; ``skip`` records
        it in ``dropped`` with reason ``malformed`` and goes on.
    """

    id_field: str = "id"
    text_field: str = "text"
    date_field: str = "date"
    format: str = "auto"
    on_error: str = "raise"

    def __post_init__(self) -> None:
        _choice("input", "format", self.format, ("auto", "jsonl", "parquet", "csv", "txt"))
        _choice("input", "on_error", self.on_error, ("raise", "skip"))
        for key in ("id_field", "text_field"):
            if not getattr(self, key):
                raise ConfigError(f"input.{key} is empty; name the field, e.g. input.{key} = \"body\"")


@dataclass(frozen=True)
class NormaliseConfig:
    """Text repair, applied in the order given.

    fixers: names from the fixer registry (``ftfy``: mojibake, HTML entities, control characters;
        ``quotes``: glued, stray and mismatched curly quotes; ``whitespace``: non-breaking and runaway
        spaces, trailing blanks). Leave one out to switch it off.
    max_unit_chars: texts are repaired in paragraph units; longer units are cut at line breaks or
        spaces to this size, which bounds the cost of the offset map on huge documents.
    """

    fixers: tuple[str, ...] = FIXER_NAMES
    max_unit_chars: int = 65536

    def __post_init__(self) -> None:
        object.__setattr__(self, "fixers", tuple(self.fixers))
        for name in self.fixers:
            _choice("normalise", "fixers", name, FIXER_NAMES)
        if len(set(self.fixers)) != len(self.fixers):
            raise ConfigError(f"normalise.fixers = {list(self.fixers)!r} names a fixer twice; name each once")
        _range("normalise", "max_unit_chars", self.max_unit_chars, 256, 10**9)


@dataclass(frozen=True)
class SegmentConfig:
    """How documents are cut into passages.

    unit: ``paragraph`` (blank lines, or indented first lines when a text has no blank lines),
        ``line`` (every non-empty line) or ``sentence`` (paragraphs cut into sentences).
    fragment_max_words: a passage of at most this many words and no closing punctuation is a
        ``fragment`` (bare image labels such as "Biden"); fragments are never paired.
    """

    unit: str = "paragraph"
    fragment_max_words: int = 3

    def __post_init__(self) -> None:
        _choice("segment", "unit", self.unit, ("paragraph", "line", "sentence"))
        _range("segment", "fragment_max_words", self.fragment_max_words, 0, 100)


@dataclass(frozen=True)
class PairsConfig:
    """Within-document repeats: caption-then-paraphrase pairs and repeated passages.

    In a document of at most ``exact_max_passages`` eligible passages every pair is a candidate; in
    a larger one, candidates come from MinHash LSH over character shingles (plus, always, every pair
    of neighbouring passages, since a caption's paraphrase follows it). Each candidate is verified
    with rapidfuzz. The default 42 bands x 3 rows put the LSH S-curve's midpoint near Jaccard 0.29:
    it finds distant repeats (Jaccard >= 0.4) with probability >= 0.93 while unrelated passages
    (Jaccard ~0.08) collide about 2% of the time, so a 5,000-paragraph document yields ~0.1% of all pairs.

    enabled: run this stage.
    shingle_chars: length of the character shingles taken from the case-folded word sequence. A
        spinner keeps few long word n-grams, so short character shingles carry the overlap.
    exact_max_passages: a document with at most this many eligible passages has all its pairs
        checked (exact, and cheaper than signatures at that size); a larger one goes through LSH.
    num_perm, bands, rows, seed: MinHash permutations, LSH bands x rows per band, and the seed.
    min_words: passages shorter than this are not paired.
    caption_similarity: rapidfuzz token_sort_ratio (0-100) needed for neighbours to be a caption pair.
    caption_jaccard: exact shingle Jaccard also needed for a caption pair.
    repeat_similarity, repeat_jaccard: the same, for passages that are not neighbours (a repeat).
    number_containment: when both passages state numbers, the share of the smaller set of numbers
        that the other must also state (a rewrite keeps its figures; parallel table lines do not).
    name_containment: when both name people, places or dates (capitalised words), the share of the
        smaller set that has a close spelling in the other (neighbouring report paragraphs name others).
    min_length_ratio: the shorter passage's share of the longer one's length (a paraphrase has about
        its original's length).
    drop_rewrites: drop the second member of a caption pair from the cleaned text.
    drop_verbatim_repeats: drop a passage identical to an earlier one from the cleaned text.
    batch_passages: passages handled at once (whole documents per batch); bounds memory.
    max_bucket: an LSH bucket of more passages than this (one boilerplate line repeated thousands of
        times in a huge document) yields the chain of its members instead of all pairs.
    batch_chars: and at most about this many characters at once (long passages make many shingles:
        20,000 passages of 300 words took 3 GB in one batch, 0.6 GB in batches of 2 million characters).
    """

    enabled: bool = True
    shingle_chars: int = 5
    exact_max_passages: int = 32
    num_perm: int = 128
    bands: int = 42
    rows: int = 3
    seed: int = 1
    min_words: int = 8
    caption_similarity: float = 68.0
    caption_jaccard: float = 0.2
    repeat_similarity: float = 80.0
    repeat_jaccard: float = 0.4
    number_containment: float = 1.0
    name_containment: float = 0.6
    min_length_ratio: float = 0.7
    drop_rewrites: bool = True
    drop_verbatim_repeats: bool = True
    max_bucket: int = 64
    batch_passages: int = 20000
    batch_chars: int = 2_000_000

    def __post_init__(self) -> None:
        _range("pairs", "batch_passages", self.batch_passages, 1, 10**9)
        _range("pairs", "batch_chars", self.batch_chars, 1000, 10**12)
        _range("pairs", "max_bucket", self.max_bucket, 2, 10**9)
        _range("pairs", "exact_max_passages", self.exact_max_passages, 0, 10**6)
        _lsh_checks("pairs", self.num_perm, self.bands, self.rows)
        _range("pairs", "shingle_chars", self.shingle_chars, 1, 64)
        for key in ("caption_similarity", "repeat_similarity"):
            _range("pairs", key, getattr(self, key), 0.0, 100.0)
        for key in ("caption_jaccard", "repeat_jaccard", "number_containment", "name_containment", "min_length_ratio"):
            _range("pairs", key, getattr(self, key), 0.0, 1.0)


@dataclass(frozen=True)
class ClusterConfig:
    """Near-duplicate documents across the corpus.

    Documents with identical normalised text (whitespace folded) always form one group; the rest go
    through MinHash LSH over word shingles, candidates are verified, and connected components of
    verified pairs are clusters.

    enabled: run this stage.
    shingle_words: word n-gram size of the document shingles.
    num_perm, bands, rows, seed: MinHash permutations, LSH bands x rows per band, and the seed.
    threshold: exact shingle Jaccard a candidate pair needs to be a near duplicate.
    min_similarity: rapidfuzz ratio (0-100) on the folded texts the pair also needs.
    keep: which member of a cluster is kept: ``first`` (input order), ``earliest`` (smallest
        ``input.date_field``; members without a date come last), ``longest`` (most characters).
        Ties go to the earlier record, so the rule is deterministic.
    max_bucket: an LSH bucket larger than this contributes a chain of its sorted members instead of
        all pairs, so that a huge bucket costs linear, not quadratic, work.
    min_words: documents with fewer words are grouped only when identical: short templated notices
        (Reuters' dividend announcements) differ from each other in one figure and a company name.
    """

    enabled: bool = True
    shingle_words: int = 3
    num_perm: int = 128
    bands: int = 32
    rows: int = 4
    seed: int = 1
    threshold: float = 0.7
    min_similarity: float = 80.0
    keep: str = "first"
    max_bucket: int = 64
    min_words: int = 30

    def __post_init__(self) -> None:
        _lsh_checks("cluster", self.num_perm, self.bands, self.rows)
        _range("cluster", "min_words", self.min_words, 0, 10**6)
        _range("cluster", "shingle_words", self.shingle_words, 1, 32)
        _range("cluster", "threshold", self.threshold, 0.0, 1.0)
        _range("cluster", "min_similarity", self.min_similarity, 0.0, 100.0)
        _choice("cluster", "keep", self.keep, ("first", "earliest", "longest"))
        _range("cluster", "max_bucket", self.max_bucket, 2, 10**7)


@dataclass(frozen=True)
class OutputConfig:
    """What is written.

    format: ``same`` (as the input; ``txt`` input gives ``jsonl``), ``jsonl``, ``parquet`` or ``csv``.
    report_examples: how many examples per finding the report shows.
    checkpoint_documents: ``dedup clean`` saves the per-document stages' results every this many
        documents in ``<output>/.dedup-work/``, so that ``--resume`` continues a killed run from its
        last finished batch (the folder is removed when the run finishes).
    """

    format: str = "same"
    report_examples: int = 5
    checkpoint_documents: int = 5000

    def __post_init__(self) -> None:
        _choice("output", "format", self.format, ("same", "jsonl", "parquet", "csv"))
        _range("output", "report_examples", self.report_examples, 0, 1000)
        _range("output", "checkpoint_documents", self.checkpoint_documents, 1, 10**9)


def _lsh_checks(section: str, num_perm: int, bands: int, rows: int) -> None:
    _range(section, "num_perm", num_perm, 2, 4096)
    _range(section, "bands", bands, 1, 4096)
    _range(section, "rows", rows, 1, 4096)
    if bands * rows > num_perm:
        raise ConfigError(
            f"{section}.bands * {section}.rows = {bands} * {rows} = {bands * rows} exceeds "
            f"{section}.num_perm = {num_perm}; lower bands or rows, or raise num_perm"
        )


@dataclass(frozen=True)
class GarbleConfig:
    """Garble scoring: which passages are a machine rewrite that distorts its original.

    enabled: run this stage.
    threshold: a passage whose garble_score (0-1, calibrated, 0.5 = even odds) reaches this is labelled
        ``garbled``.
    unpaired: also run the intrinsic detectors (merged or one-off names, doubled words, unbalanced
        quotes, a parenthesis giving a person another's role) on every passage, not only on rewrites.
    min_words: passages with fewer words are ``not scored``.
    action: ``flag`` (annotate only) or ``drop`` (cut garbled passages from the cleaned text with
        reason ``garbled``).
    near_copies: also score each near-duplicate document against the copy its cluster kept (the
        garble columns of its record in ``dropped``). This only annotates records that are dropped
        anyway, and on a corpus with many near copies it is most of a run's time; off, those records
        are ``not scored`` and every other output is the same.
    """

    enabled: bool = True
    threshold: float = 0.5
    unpaired: bool = True
    min_words: int = 3
    action: str = "flag"
    near_copies: bool = True

    def __post_init__(self) -> None:
        _range("garble", "threshold", self.threshold, 0.0, 1.0)
        _range("garble", "min_words", self.min_words, 0, 1000)
        _choice("garble", "action", self.action, ("flag", "drop"))

    @property
    def scores_copies(self) -> bool:
        """Whether near-duplicate documents are scored against their kept copies."""
        return self.enabled and self.near_copies


@dataclass(frozen=True)
class EngineConfig:
    """Where the pipeline runs.

    name: ``polars`` (embedded, the default) or ``spark`` (Apache Spark: ``pip install pyspark`` and a
        Java runtime; the same stage functions run per partition, Spark does the shuffles).
    master: Spark master URL: ``local[2]``, ``spark://host:7077``, ``yarn`` (spark only).
    shuffle_partitions: Spark's ``spark.sql.shuffle.partitions``.
    batch_documents: documents per Arrow batch handed to the stage functions (spark only).
    driver_components_max: connected components are found on the driver when there are at most this
        many candidate edges, else by label propagation inside Spark.
    driver_memory: Spark's ``spark.driver.memory`` for a session dedup starts (``""``: Spark's default).
    memory_budget: peak memory (resident set) the polars engine may use, e.g. ``"2GB"`` or ``"800MB"``.
        Given, ``dedup clean`` streams the corpus through in batches sized to it and keeps only a
        compact row per document in memory, so an input larger than memory goes through
        (:mod:`dedup.stream`). ``""``: the corpus is held in memory (fastest while it fits).
    processes: processes that run the per-document stages of an in-memory run (normalise,
        segment, pairs, garble), counting the calling process, which shares the jobs with the
        ``processes - 1`` workers (a job is at most a batch of ``output.checkpoint_documents``);
        0: one per CPU this process may use, 1: the calling process alone. The outputs are the
        same on any number. A streaming run (``memory_budget``) uses one process.
    """

    name: str = "polars"
    master: str = "local[2]"
    shuffle_partitions: int = 8
    batch_documents: int = 2000
    driver_components_max: int = 5_000_000
    driver_memory: str = ""
    memory_budget: str = ""
    processes: int = 0

    def __post_init__(self) -> None:
        _choice("engine", "name", self.name, ("polars", "spark"))
        _range("engine", "processes", self.processes, 0, 1024)
        if self.memory_budget:
            parse_size(self.memory_budget, "engine.memory_budget")
        if not self.master:
            raise ConfigError('engine.master is empty; give a Spark master URL, e.g. engine.master = "local[2]"')
        _range("engine", "shuffle_partitions", self.shuffle_partitions, 1, 100_000)
        _range("engine", "batch_documents", self.batch_documents, 1, 10**7)
        _range("engine", "driver_components_max", self.driver_components_max, 0, 10**12)


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(text: str, what: str = "size") -> int:
    """Bytes in a size such as ``"2GB"``, ``"1.5 GiB"`` or ``"800mb"`` (GB = 10^9, GiB = 2^30).

    >>> parse_size("2GB"), parse_size("1.5 GiB"), parse_size("800mb")
    (2000000000, 1610612736, 800000000)
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ConfigError(f'{what} = {text!r} is not a size; write it like "2GB", "800MB" or "1.5GiB"')
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


@dataclass(frozen=True)
class PipelineConfig:
    """The whole pipeline: one section per stage, plus input and output."""

    input: InputConfig = field(default_factory=InputConfig)
    normalise: NormaliseConfig = field(default_factory=NormaliseConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    pairs: PairsConfig = field(default_factory=PairsConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    garble: GarbleConfig = field(default_factory=GarbleConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        out = {}
        for f in fields(self):
            section = dataclasses.asdict(getattr(self, f.name))
            out[f.name] = {k: list(v) if isinstance(v, tuple) else v for k, v in section.items()}
        return out


SECTIONS = {f.name: f.default_factory for f in fields(PipelineConfig)}  # type: ignore[misc]


def _coerce(section: str, key: str, value: Any, annotation: Any) -> Any:
    """Check a TOML value against the field's type; ints are accepted for floats."""
    kind = annotation
    if get_origin(kind) is tuple:
        item = get_args(kind)[0]
        if not isinstance(value, list | tuple) or not all(isinstance(v, item) for v in value):
            raise ConfigError(f"{section}.{key} = {value!r} must be a list of {item.__name__}")
        return tuple(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise ConfigError(f"{section}.{key} = {value!r} must be {kind.__name__}, not {type(value).__name__}")
    return value


def config_from_dict(data: dict[str, Any]) -> PipelineConfig:
    """Build a validated config from a nested dict (as parsed from TOML)."""
    sections = {}
    if isinstance(data.get("engine"), str):  # the shorthand engine = "spark"
        data = {**data, "engine": {"name": data["engine"]}}
    for name, value in data.items():
        if name not in SECTIONS:
            raise ConfigError(f"unknown config section [{name}]; sections are: {', '.join(SECTIONS)}")
        if not isinstance(value, dict):
            raise ConfigError(f"config section [{name}] must be a table of keys, not {value!r}")
        cls = SECTIONS[name]
        known = get_type_hints(cls)
        kwargs = {}
        for key, item in value.items():
            if key not in known:
                raise ConfigError(f"unknown config key {name}.{key}; keys of [{name}] are: {', '.join(known)}")
            kwargs[key] = _coerce(name, key, item, known[key])
        sections[name] = cls(**kwargs)
    return PipelineConfig(**sections)


def _parse_override(text: str) -> tuple[str, str, Any]:
    key, sep, raw = text.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not name:
        raise ConfigError(f"--set {text!r} is not of the form section.key=value, e.g. --set cluster.keep=longest")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is taken as a string: --set cluster.keep=longest
    return section, name, value


def load_config(path: str | Path | None = None, overrides: tuple[str, ...] | list[str] = ()) -> PipelineConfig:
    """Read a TOML config (or start from the defaults) and apply ``section.key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist; check the path given to --config") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for text in overrides:
        section, key, value = _parse_override(text)
        data.setdefault(section, {})
        if not isinstance(data[section], dict):
            raise ConfigError(f"config section [{section}] must be a table of keys")
        data[section][key] = value
    return config_from_dict(data)
