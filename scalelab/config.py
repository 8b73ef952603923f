"""Typed configuration: every setting scalelab reads lives here.

All models forbid unknown keys and validate ranges, so a config is checked in full before any work
starts. `load_config` reads YAML, applies dotted `--set` overrides and turns every validation
problem into a one-line `ConfigError` of the form `file: field.path: message`.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scalelab.errors import ConfigError
from scalelab.models.registry import check_model_config, family


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bools_for_numbers(cls, data: Any) -> Any:
        """YAML's `true` is not a depth of 1: refuse booleans where a number is expected (pydantic's
        lax mode would convert them)."""
        if isinstance(data, dict):
            for name, value in data.items():
                info = cls.model_fields.get(name)
                if isinstance(value, bool) and info is not None and _wants_number(info.annotation):
                    raise ValueError(f"{name}: expected a number, got {str(value).lower()}")
        return data


def _wants_number(annotation: Any) -> bool:
    import typing

    args = set(typing.get_args(annotation)) or {annotation}
    return bool(args & {int, float}) and bool not in args


# --------------------------------------------------------------------------------------------- data


class ColumnMap(StrictModel):
    """Column names of a generic CSV/TSV/Parquet interaction file."""

    user: str = Field("user_id", description="Column holding the user id.")
    item: str = Field("item_id", description="Column holding the item id.")
    timestamp: str | None = Field(
        "timestamp", description="Column holding the event time (unix seconds); null = file order."
    )
    rating: str | None = Field(None, description="Optional rating column (for rating_threshold).")
    behaviour: str | None = Field(None, description="Optional behaviour-type column (click, buy, ...).")
    domain: str | None = Field(None, description="Optional domain column for multi-domain data.")


class SyntheticConfig(StrictModel):
    """A Markov process over a Zipf-popular catalogue; `randomness` is the entropy knob.

    Each item has `branching` fixed successors. At each step a user follows one of the current
    item's successors with probability 1 - randomness, otherwise draws a fresh item from the Zipf
    popularity distribution. Low randomness and low branching give predictable, low-entropy data.
    The measured (plug-in) ApEn follows the knob while interactions far outnumber the possible
    (m+1)-grams; with a large catalogue and little data it saturates, as every plug-in estimate does.
    """

    num_users: int = Field(2000, ge=1, le=50_000_000, description="Number of users.")
    num_items: int = Field(200, ge=2, le=50_000_000, description="Catalogue size.")
    mean_seq_len: float = Field(50.0, ge=2, le=100_000, description="Mean events per user.")
    min_seq_len: int = Field(5, ge=2, description="Shortest generated sequence.")
    zipf_exponent: float = Field(1.0, ge=0.0, le=5.0, description="Popularity skew (0 = uniform).")
    branching: int = Field(4, ge=1, le=1000, description="Successors per item in the Markov chain.")
    randomness: float = Field(
        0.3, ge=0.0, le=1.0, description="Probability of a popularity draw instead of a Markov step."
    )
    mean_gap_seconds: float = Field(3600.0, gt=0, description="Mean time between a user's events.")
    seed: int = Field(0, ge=0, description="Random seed of the generator.")
    domains: int = Field(
        1,
        ge=1,
        le=64,
        description="Domains sharing the users: each domain is an independent process over its own "
        "catalogue (domain 'd1', 'd2', ...), and a user's events of all domains merge by time.",
    )

    @model_validator(mode="after")
    def _check_lengths(self) -> SyntheticConfig:
        if self.mean_seq_len < self.min_seq_len:
            raise ValueError(f"mean_seq_len ({self.mean_seq_len}) is below min_seq_len ({self.min_seq_len})")
        return self


DataFormat = Literal[
    "auto", "ml-1m", "ml-20m", "ml-100k", "amazon-csv", "amazon-json", "sasrec", "csv", "tsv", "parquet"
]


class DomainSource(StrictModel):
    """One domain of a multi-domain dataset: an interaction file (and its item features)."""

    path: str = Field(description="Interaction file of this domain (or a dataset name).")
    format: DataFormat = Field("auto", description="File format; auto = from the file name and header.")
    columns: ColumnMap = Field(default_factory=ColumnMap, description="Columns of a generic table.")
    item_features: str | None = Field(
        None, description="Item feature file of this domain (see data.item_features)."
    )


class DataConfig(StrictModel):
    """Where the interactions come from and how they are turned into sequences."""

    path: str | None = Field(
        None,
        description="Interaction file, or a dataset name from `scalelab data list` resolved under "
        "$SCALELAB_DATA; null = the synthetic generator.",
    )
    format: DataFormat = Field("auto", description="File format; auto = from the file name and header.")
    columns: ColumnMap = Field(default_factory=ColumnMap, description="Columns of a generic table.")
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig, description="Used when path is null.")
    rating_threshold: float | None = Field(
        None, description="Keep only interactions with rating >= this (needs a rating column)."
    )
    dedup: Literal["none", "exact", "first", "last"] = Field(
        "exact",
        description="Duplicates: none; exact = identical (user, item, time) rows; first/last = keep "
        "one event per (user, item).",
    )
    min_user_count: int = Field(0, ge=0, description="k-core: minimum interactions per user (0 = off).")
    min_item_count: int = Field(0, ge=0, description="k-core: minimum interactions per item (0 = off).")
    kcore: Literal["iterative", "single"] = Field(
        "iterative", description="Repeat the k-core filter until stable, or one pass (Amazon Books)."
    )
    min_seq_len: int = Field(3, ge=2, description="Drop users with fewer events (after filtering).")
    split: Literal["leave_one_out", "leave_two_out"] = Field(
        "leave_two_out",
        description="leave_one_out: last item = test (Meta's protocol); leave_two_out: second to last "
        "= validation, last = test.",
    )
    max_seq_len: int = Field(200, ge=1, le=100_000, description="Keep the most recent items per sequence.")
    fraction: float = Field(
        1.0, gt=0.0, le=1.0, description="Fraction of users kept (nested across fractions for one seed)."
    )
    history_fraction: float = Field(
        1.0, gt=0.0, le=1.0, description="Fraction of each user's history kept (the most recent part)."
    )
    subsample_seed: int = Field(0, ge=0, description="Seed of the user subsample.")
    cache: bool = Field(True, description="Reuse the processed-dataset cache.")
    catalogue: str | None = Field(
        None,
        description="Item list completing the catalogue: its items absent from the (filtered) interactions "
        "become candidates that are ranked and drawn as negatives. MovieLens movies.dat / u.item or one id per "
        "line. Meta's ML-1M protocol ranks every movie of movies.dat.",
    )
    domains: dict[str, DomainSource] | None = Field(
        None,
        description="Multi-domain data: domain name -> source. Items are namespaced by domain; users too "
        "unless shared_users. A user's events of all domains merge into one sequence by time. Replaces path.",
    )
    shared_users: bool = Field(
        False, description="Domains share user ids (the same person), so their sequences merge."
    )
    keep_domains: list[str] | None = Field(
        None, description="Keep only these domains (a per-domain model); null = all (a joint model)."
    )
    behaviour_from_rating: bool = Field(
        False,
        description="Use the rating value as the behaviour type (ML-100K style rating levels '1'..'5').",
    )
    ties: Literal["file_order", "shuffle"] = Field(
        "file_order",
        description="Order of a user's events with equal timestamps: file_order (a stable sort) or shuffle "
        "(a seeded random order, what an unstable sort such as pandas' default quicksort gives; Meta's ML-1M "
        "preprocessing sorts that way). Matters on ML-1M, where half of consecutive events share a second.",
    )
    tie_seed: int = Field(0, ge=0, description="Seed of the tie shuffle (data.ties: shuffle).")
    item_features: str | None = Field(
        None,
        description="Item side information: MovieLens movies.dat / u.item (genres) or a TSV `item_id title` "
        "(titles as hashed word tokens, e.g. Amazon item_titles.tsv.gz). Used when features.item_features.",
    )

    @model_validator(mode="after")
    def _check_combinations(self) -> DataConfig:
        if self.split == "leave_two_out" and self.min_seq_len < 3:
            raise ValueError("leave_two_out needs min_seq_len >= 3 (one train, one valid, one test item)")
        if self.domains is not None:
            if self.path is not None:
                raise ValueError("give either path or domains, not both")
            if not self.domains:
                raise ValueError("domains: give at least one domain")
            if any(not name or ":" in name for name in self.domains):
                raise ValueError("domains: names must be non-empty and contain no ':'")
        if self.keep_domains is not None:
            known = (
                list(self.domains)
                if self.domains is not None
                else [f"d{i + 1}" for i in range(self.synthetic.domains)]
                if self.path is None
                else None
            )
            unknown = [d for d in self.keep_domains if known is not None and d not in known]
            if not self.keep_domains or unknown:
                raise ValueError(
                    f"keep_domains: unknown domain(s) {unknown or self.keep_domains}; known: {', '.join(known or [])}"
                )
        return self


# -------------------------------------------------------------------------------------------- model


class ModelConfig(StrictModel):
    """Architecture and size. Family-specific defaults are filled in by the model registry."""

    family: str = Field(
        "hstu", description="Architecture: hstu, sasrec, sasrec_plus, gpt, llama, fuxi_alpha."
    )
    depth: int = Field(2, ge=1, le=512, description="Number of blocks.")
    width: int = Field(50, ge=1, le=65_536, description="Embedding width D.")
    heads: int = Field(1, ge=1, le=1024, description="Attention heads.")
    head_dim: int | None = Field(None, ge=1, description="Per-head q/k/v width; null = width // heads.")
    ffn_multiplier: float | None = Field(
        None, gt=0, le=64, description="FFN hidden size / width; null = the family's default."
    )
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="Dropout rate.")
    rab: Literal["none", "position", "position_time"] | None = Field(
        None, description="Relative attention bias; null = the family's default."
    )
    attention: Literal["silu", "softmax"] | None = Field(
        None, description="Attention nonlinearity; null = the family's default."
    )
    gate: bool | None = Field(None, description="HSTU feature-crossing gate u * LN(AV); null = default.")
    residual: Literal["post", "pre"] | None = Field(
        None, description="SASRec+ residual: post = SASRec's, pre = x + f(LN(x)); null = default."
    )
    fuxi_channels: list[Literal["semantic", "positional", "temporal"]] | None = Field(
        None, description="FuXi-alpha attention channels; null = all three."
    )
    max_seq_len: int | None = Field(
        None,
        ge=2,
        le=1_000_000,
        description="Padded length N the model handles (position tables, HSTU's attention divisor); "
        "null = data.max_seq_len + 1 (history plus the next item). Meta's research code pads to "
        "history + 1 + 10 output slots (211 for ML-1M's 200) and divides HSTU's attention by that.",
    )
    time_buckets: Literal["exact", "float32"] = Field(
        "exact",
        description="Time-gap buckets of the relative time bias, floor(ln|dt| / 0.301): exact = of the "
        "real number; float32 = evaluated in float32 as Meta's research code does (a gap just below "
        "a bucket edge lands one bucket up).",
    )

    @field_validator("family")
    @classmethod
    def _known_family(cls, v: str) -> str:
        family(v)  # ValueError naming the known families
        return v

    @model_validator(mode="after")
    def _check_family(self) -> ModelConfig:
        if self.head_dim is None and self.width % self.heads != 0:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}; set head_dim")
        check_model_config(self)
        return self


# ----------------------------------------------------------------------------------------- training


class TrainConfig(StrictModel):
    """Optimisation recipe (defaults: Meta's ML-1M recipe)."""

    loss: Literal["sampled_softmax", "bce", "full_softmax"] = Field(
        "sampled_softmax", description="Training loss."
    )
    num_negatives: int = Field(128, ge=1, le=1_000_000, description="Sampled negatives per position.")
    negatives_per: Literal["position", "sequence"] = Field(
        "position",
        description="sampled_softmax: draw the negatives per position (Meta's), or once per sequence for all "
        "its positions (the same expected loss and gradient; one batched matmul instead of a per-position "
        "gather, several times faster on CPU).",
    )
    temperature: float = Field(0.05, gt=0, le=100, description="Softmax temperature on cosine scores.")
    lr: float = Field(1e-3, gt=0, le=10, description="AdamW learning rate.")
    betas: tuple[float, float] = Field((0.9, 0.98), description="AdamW betas.")
    weight_decay: float = Field(0.0, ge=0, le=10, description="AdamW weight decay.")
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up steps.")
    schedule: Literal["constant", "cosine", "linear"] = Field(
        "constant", description="LR decay after warm-up."
    )
    grad_clip: float | None = Field(None, gt=0, description="Clip the global gradient norm (null = off).")
    epochs: int = Field(101, ge=1, le=100_000, description="Maximum epochs.")
    token_budget: int | None = Field(None, ge=1, description="Stop after this many training targets.")
    batch_size: int = Field(128, ge=1, le=1_000_000, description="Sequences per batch.")
    bucket_pool: int | None = Field(
        None,
        ge=2,
        le=100_000,
        description="Length-bucketed batching: the shuffled users are cut into pools of this many batches, "
        "each pool sorted by length before it is cut into batches, and the batches shuffled; short "
        "sequences are then padded to their batch's longest, not to a long one (null = off). With "
        "target_weights: batch this also reweights the objective toward short users; uniform keeps it.",
    )
    length_groups: int = Field(
        1,
        ge=1,
        le=1024,
        description="Compute each batch as this many groups of rows of similar length, each padded only to "
        "its own longest row, and sum their gradients. The batch (which users train together) and its "
        "gradient, the mean over all its targets, stay the same, so the recipe is unchanged; the padding "
        "positions of a batch of short and long users are not computed (ML-1M at length 200: a random "
        "batch of 128 is 45% padding, 17% in 4 groups, 8% in 8; with 8 groups and cpu_workers 2, 1.7x the "
        "step rate of HSTU-large and 2.3x of FuXi-alpha on two cores, bench/bench_length_groups.py). Each "
        "group draws its own negatives and dropout masks: a run is reproducible for a given count. With "
        "cpu_workers the groups are shared out among the worker threads. 1 = the whole batch padded to its "
        "longest row.",
    )
    target_weights: Literal["batch", "uniform"] = Field(
        "batch",
        description="How a step weighs its targets. batch: the loss is the mean over the batch's targets, so "
        "every batch weighs the same and a target weighs 1 / (targets in its batch). uniform: the sum over "
        "the batch's targets divided by the epoch's mean targets per batch, so every target weighs the "
        "same whichever batch it is in. On shuffled batches the two agree on average; with bucket_pool "
        "they do not: batches of short users have few targets, and with `batch` each of those targets "
        "weighs more (ML-1M at length 200: users with at most 50 targets carry 31% of the gradient "
        "instead of their 9% share of the targets). uniform keeps the shuffled batches' objective.",
    )
    patience: int | None = Field(None, ge=1, description="Early stopping patience in evaluations.")
    min_steps: int = Field(
        0,
        ge=0,
        description="Early stopping does not end a run before this many optimizer steps (the epoch limit and "
        "token budget still do). For sweeps over data fractions: an epoch of 1/8 of ML-1M is 6 steps, so "
        "patience counted in its evaluations can end a cell while its loss is still falling fast; give "
        "every fraction the steps the full data needs to converge. 0 = patience alone.",
    )
    eval_every: int = Field(1, ge=1, description="Evaluate every this many epochs.")
    eval_every_steps: int | None = Field(
        None,
        ge=1,
        description="Evaluate after the first epoch that crosses each multiple of this many optimizer steps, "
        "instead of every eval_every epochs (leave eval_every at 1). Patience then counts the same amount "
        "of training whatever the data size: on a sweep over data fractions, an evaluation every 2 epochs "
        "would come every 12 steps on 1/8 of ML-1M and every 96 on all of it.",
    )
    seed: int = Field(42, ge=0, description="Seed for data order, negatives and initialisation.")
    device: str = Field("auto", description="auto | cpu | cuda[:i] | npu[:i] | mps.")
    compile: bool = Field(
        False,
        description="torch.compile the encoder blocks (dynamic shapes; the first steps pay the compile time, "
        "tens of seconds on a CPU). Same computation, so a run may switch it on or off when it resumes.",
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="Autocast precision.")
    cpu_workers: int = Field(
        1,
        ge=1,
        le=1024,
        description="On a CPU, split each batch among this many threads, each running operators on one "
        "core, and sum their gradients (1.2-1.5x the step rate on two cores: bench/bench_cpu_workers.py); "
        "set it to the trial's CPU count. Every worker draws its negatives and dropout masks from its own "
        "generator, so a run is reproducible for a given count, but changing the count changes the draws. "
        "1 = one thread pool for the whole batch (PyTorch's default). Ignored off the CPU.",
    )

    @model_validator(mode="after")
    def _check_workers(self) -> TrainConfig:
        if self.cpu_workers > 1 and self.compile:
            raise ValueError("cpu_workers > 1 does not combine with compile")
        if self.eval_every_steps is not None and self.eval_every != 1:
            raise ValueError("set one of eval_every (epochs) and eval_every_steps (optimizer steps)")
        return self

    @field_validator("betas")
    @classmethod
    def _check_betas(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError("each beta must be in [0, 1)")
        return v

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        kind, _, index = v.partition(":")
        if kind not in {"auto", "cpu", "cuda", "npu", "mps"} or (index and not index.isdigit()):
            raise ValueError(f"unknown device {v!r} (use auto, cpu, cuda[:i], npu[:i] or mps)")
        return v


class EvalConfig(StrictModel):
    """Evaluation protocol (defaults: full ranking, history filtered, as in Meta's numbers)."""

    ks: list[int] = Field([10, 50, 200], min_length=1, description="Cut-offs for HR@K and NDCG@K.")
    filter_history: bool = Field(True, description="Remove the user's input items from the ranking.")
    mode: Literal["full", "sampled"] = Field(
        "full", description="full = rank the whole catalogue; sampled = 1 positive + sampled negatives."
    )
    num_candidates: int = Field(100, ge=2, description="Candidates per user in sampled mode.")
    batch_size: int = Field(
        64, ge=1, description="Users per evaluation batch (users of similar length are batched together)."
    )
    item_chunk: int = Field(
        262_144,
        ge=1,
        description="Full ranking scores the catalogue in chunks of this many items, so memory stays "
        "bounded (batch_size x item_chunk scores) for catalogues of millions of items.",
    )
    monitor: str | None = Field(
        None,
        description="Validation metric for early stopping and best epoch (logloss is minimised, the others "
        "maximised); null = ndcg@10 for retrieval, auc for ranking.",
    )

    @field_validator("ks")
    @classmethod
    def _check_ks(cls, v: list[int]) -> list[int]:
        if any(k < 1 for k in v):
            raise ValueError("every K must be >= 1")
        return sorted(set(v))


class TaskConfig(StrictModel):
    """What the model is trained for: next-item retrieval, or ranking (click-through) of candidates."""

    kind: Literal["retrieval", "ranking"] = Field(
        "retrieval",
        description="retrieval: rank the whole catalogue for the next item (HR/NDCG/MRR); ranking: score "
        "(history, candidate) pairs with BCE, the real next item (label 1) against sampled items (AUC/GAUC/LogLoss).",
    )
    negative_rate: float = Field(
        1.0,
        gt=0,
        le=100,
        description="Ranking: sampled negatives per positive (integer part always, the fraction with that "
        "probability), drawn from the positive's domain among items absent from the user's input history.",
    )
    eval_negative_rate: float | None = Field(
        None,
        gt=0,
        le=100,
        description="Ranking: negatives per held-out event (fixed by the seed); null = negative_rate.",
    )
    scorer: Literal["dot", "mlp", "cross"] = Field(
        "cross",
        description="Ranking head after a sequence encoder: dot (scaled cosine), mlp on [u, e], or cross = "
        "MLP on [u, e, u*e]. DIN has its own head.",
    )
    label_threshold: float | None = Field(
        None, description="Ranking: explicit label rule, the real item is positive when its rating >= this."
    )
    target_behaviours: list[str] | None = Field(
        None,
        description="Ranking: only events of these behaviour types are predicted (all events stay in the "
        "history); null = every event.",
    )


class FeaturesConfig(StrictModel):
    """Side inputs added to the item or event representation (the complex scenarios)."""

    domain: bool = Field(False, description="Add a domain embedding to every item (needs domain data).")
    behaviour: bool = Field(
        False, description="Add a behaviour-type embedding to every history event (needs behaviour data)."
    )
    item_features: bool = Field(
        False, description="Pool the item's feature tokens (genres, title words) into its representation."
    )
    feature_buckets: int = Field(4096, ge=1, le=10_000_000, description="Hash buckets of title word tokens.")


_TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file")


class TrackingConfig(StrictModel):
    """Where runs are logged."""

    mlflow_uri: str | None = Field(None, description="MLflow tracking URI; null = sqlite under results/.")
    experiment: str = Field("scalelab", min_length=1, description="MLflow experiment name.")
    drain_timeout_s: float = Field(
        120.0,
        ge=0,
        description="At the end, how long to retry writes the store did not take (then they wait in a spool file).",
    )
    step_metrics: bool = Field(
        False, description="Also log the loss of every optimiser step (metric step_loss, step = global step)."
    )

    @field_validator("mlflow_uri")
    @classmethod
    def _known_store(cls, v: str | None) -> str | None:
        """The stores MLflow can track to: a database (SQLAlchemy URI), a tracking server, a local
        directory, Databricks. Anything else would only fail when the first run starts."""
        if v is None:
            return v
        scheme = v.split("://", 1)[0].split("+", 1)[0].lower() if "://" in v else ""
        if v.startswith("databricks") or scheme in _TRACKING_SCHEMES:
            if scheme in ("http", "https") and not v.split("://", 1)[1].strip("/"):
                raise ValueError(f"{v!r} names no host")
            return v
        if not scheme and ":" not in v.split("/")[0]:  # a plain local path: MLflow's file store
            return v
        raise ValueError(
            f"unsupported tracking URI {v!r}: use sqlite:///PATH, http(s)://HOST:PORT, "
            "postgresql://..., mysql://..., file:///PATH or databricks"
        )


class RunConfig(StrictModel):
    """One training run: the unit a sweep trial executes."""

    name: str = Field("run", min_length=1, description="Run name.")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    task: TaskConfig = Field(default_factory=TaskConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    output_dir: str | None = Field(None, description="Checkpoints and summary; null = results/runs/<name>.")

    @model_validator(mode="after")
    def _check_lengths(self) -> RunConfig:
        n = self.model.max_seq_len
        if n is not None and n < self.data.max_seq_len + 1:
            raise ValueError(
                f"model.max_seq_len ({n}) must be >= data.max_seq_len + 1 ({self.data.max_seq_len + 1})"
            )
        if self.task.kind not in family(self.model.family).tasks:
            raise ValueError(f"model.family {self.model.family} does not do the {self.task.kind} task")
        if self.task.kind == "retrieval":
            ranking_only = {
                "target_behaviours": self.task.target_behaviours,
                "label_threshold": self.task.label_threshold,
            }
            given = [k for k, v in ranking_only.items() if v is not None]
            if given or self.features.behaviour:
                raise ValueError(
                    f"{'task.' + given[0] if given else 'features.behaviour'} needs task.kind: ranking"
                )
        if (
            self.features.item_features
            and self.data.item_features is None
            and not (self.data.domains and any(d.item_features for d in self.data.domains.values()))
        ):
            raise ValueError(
                "features.item_features needs data.item_features (a movies.dat, u.item or titles file)"
            )
        return self

    def monitor(self) -> str:
        """The validation metric that selects the best epoch."""
        return self.eval.monitor or ("auc" if self.task.kind == "ranking" else "ndcg@10")

    def padded_len(self) -> int:
        """The padded sequence length N the model is built for."""
        return self.model.max_seq_len or self.data.max_seq_len + 1


# ------------------------------------------------------------------------------------------ loading

M = TypeVar("M", bound=BaseModel)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse `a.b.c=value`; the value is read as YAML (so 8 is an int, [1, 2] a list, null None)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: expected KEY.PATH=VALUE, e.g. model.depth=8")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({e.__class__.__name__})") from None
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Return a copy of `raw` with every dotted override applied (creating sections as needed)."""
    out: dict[str, Any] = _deep_copy(raw)
    for text in overrides or []:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part!r} is a value, not a section")
            node = child
        node[path[-1]] = value
    return out


def _deep_copy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in d.items()}


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)  # type: ignore[no-untyped-call]
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: the base constructor reports it
                continue
            if not repeated:
                seen[key] = key_node.start_mark.line + 1
            else:
                first = seen[key]
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first on line {first})", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file and line."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{p}: cannot read ({e.__class__.__name__}: {e})") from None
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{p}{where}: YAML syntax error: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, found {type(raw).__name__}")
    return raw


def validate(model: type[M], raw: dict[str, Any], source: str) -> M:
    """Validate `raw` as `model`; a failure becomes one line `source: field.path: message`."""
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, model, source)) from None


@overload
def load_config(path: str | os.PathLike[str] | None, overrides: list[str] | None = None) -> RunConfig: ...
@overload
def load_config(path: str | os.PathLike[str] | None, overrides: list[str] | None, model: type[M]) -> M: ...
def load_config(
    path: str | os.PathLike[str] | None,
    overrides: list[str] | None = None,
    model: type[BaseModel] = RunConfig,
) -> BaseModel:
    """Load a YAML file (or the defaults when `path` is None), apply overrides, validate."""
    raw = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "<defaults>"
    if overrides:
        raw = apply_overrides(raw, overrides)
    return validate(model, raw, source)


def format_validation_error(err: ValidationError, model: type[BaseModel], source: str) -> str:
    """One line for the first problem, with a count of the others."""
    errors = err.errors()
    first = errors[0]
    loc = [str(p) for p in first["loc"]]
    field = ".".join(loc) or "<root>"
    if first["type"] == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        hint = difflib.get_close_matches(loc[-1], allowed, n=1)
        msg = "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        msg += f"; allowed: {', '.join(allowed)}" if allowed else ""
    else:
        msg = first["msg"].removeprefix("Value error, ")
        shown = first.get("input")
        if first["type"] != "missing" and not isinstance(shown, dict) and repr(shown) not in msg:
            msg += f" (got {shown!r})"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    return f"{source}: {field}: {msg}{more}"


def _allowed_keys(model: type[BaseModel], loc: list[str]) -> list[str]:
    """Field names of the (nested) model at `loc`, or [] when it cannot be resolved."""
    cls: Any = model
    for part in loc:
        fields = getattr(cls, "model_fields", None)
        if not fields or part not in fields:
            return []
        cls = fields[part].annotation
        # unwrap Optional[X] / X | None
        args = [a for a in getattr(cls, "__args__", ()) if a is not type(None)]
        if args and not hasattr(cls, "model_fields"):
            cls = args[0]
    fields = getattr(cls, "model_fields", None)
    return sorted(fields) if fields else []


def dump_config(cfg: BaseModel) -> dict[str, Any]:
    """The fully resolved config as plain YAML-able data."""
    return cfg.model_dump(mode="json")


def drop_old_defaults(d: dict[str, Any], introduced_later: dict[tuple[str, ...], Any]) -> None:
    """Remove from a config dump (in place) every setting introduced later that holds the value which
    reproduces the older behaviour, so hashes of the dump (checkpoint fingerprints, cell ids) do not
    change when a field is added."""
    for path, old in introduced_later.items():
        *parents, key = path
        node = d
        for part in parents:
            node = node[part]
        if node.get(key) == old:
            node.pop(key, None)
