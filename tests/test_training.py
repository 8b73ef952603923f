"""Training end to end: determinism, resume after a kill, learning beats popularity, bad input."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_file

from scalelab.config import load_config
from scalelab.data.loader import load_dataset
from scalelab.data.split import make_split
from scalelab.errors import CheckpointMismatch, ConfigError, TrainingDiverged, UserError
from scalelab.training.batches import eval_set
from scalelab.training.metrics import metrics_from_ranks, ranks_from_scores
from scalelab.training.trainer import train_run

SMALL = [
    "data.synthetic.num_users=300",
    "data.synthetic.num_items=80",
    "data.synthetic.mean_seq_len=20",
    "data.max_seq_len=20",
    "model.width=16",
    "model.depth=1",
    "train.batch_size=64",
    "train.num_negatives=16",
    "train.device=cpu",
    "eval.ks=[10]",
]


def small_cfg(*extra: str):
    return load_config(None, SMALL + list(extra))


def test_same_seed_gives_identical_metrics(tmp_path: Path) -> None:
    a = train_run(small_cfg("train.epochs=2"), tmp_path / "a")
    b = train_run(small_cfg("train.epochs=2"), tmp_path / "b")
    c = train_run(small_cfg("train.epochs=2", "train.seed=7"), tmp_path / "c")
    # identical metrics; losses agree to float32 round-off (CPU scatter-add order is not fixed)
    assert a["final"] == b["final"]
    assert [h["loss"] for h in a["history"]] == pytest.approx([h["loss"] for h in b["history"]], rel=1e-6)
    assert a["final"] != c["final"]


def test_resume_continues_to_the_same_result(tmp_path: Path) -> None:
    full = train_run(small_cfg("train.epochs=3"), tmp_path / "full")
    train_run(small_cfg("train.epochs=1"), tmp_path / "part")  # stops after epoch 1 ...
    resumed = train_run(small_cfg("train.epochs=3"), tmp_path / "part")  # ... and continues
    assert resumed["resumed_from_epoch"] == 1
    assert resumed["final"] == full["final"]
    assert [h["loss"] for h in resumed["history"]] == pytest.approx(
        [h["loss"] for h in full["history"]], rel=1e-6
    )


@pytest.mark.slow  # ~30 s; opt-in (make test-all): resume is also checked in process here and under kills in test_sweeps.py
def test_killed_process_resumes_to_the_same_metrics(tmp_path: Path) -> None:
    args = [
        "--set", "data.synthetic.num_users=1200", "--set", "data.synthetic.num_items=200",
        "--set", "data.synthetic.mean_seq_len=30", "--set", "data.max_seq_len=30", "--set", "model.width=16",
        "--set", "model.depth=1", "--set", "train.epochs=6", "--set", "train.batch_size=32",
        "--set", "train.num_negatives=32", "--set", "train.device=cpu", "--set", "eval.ks=[10]",
    ]  # fmt: skip
    cmd = [sys.executable, "-m", "scalelab", "train", *args, "--no-track"]
    ref = subprocess.run([*cmd, "-o", str(tmp_path / "ref")], capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    victim = subprocess.Popen(
        [*cmd, "-o", str(tmp_path / "run")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ckpt = tmp_path / "run" / "checkpoint.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and victim.poll() is None:
        time.sleep(0.05)
    time.sleep(0.05)  # into epoch 2 (an epoch of this run takes about 0.1-0.3 s)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert not (tmp_path / "run" / "summary.json").exists(), "the run finished before it could be killed"
    again = subprocess.run([*cmd, "-o", str(tmp_path / "run")], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    a = json.loads((tmp_path / "ref" / "summary.json").read_text())
    b = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert 1 <= b["resumed_from_epoch"] < 6
    assert a["final"] == b["final"]


def test_early_stopping_ends_the_run_and_marks_its_last_epoch(tmp_path: Path) -> None:
    """Patience counts evaluations without improvement; the epoch that ends the run (by patience or
    by the epoch limit) is the only one its callbacks see marked `last`."""
    seen: list[tuple[int, bool]] = []
    frozen = small_cfg("train.epochs=20", "train.lr=1e-9", "train.patience=2", "train.eval_every=1")
    out = train_run(frozen, tmp_path / "frozen", callbacks=[lambda r: seen.append((r.epoch, r.last))])
    assert out["stop_reason"] == "early_stopping" and out["epochs_run"] < 20  # a frozen model stops improving
    assert seen == [(e, e == out["epochs_run"]) for e in range(1, out["epochs_run"] + 1)]
    seen.clear()
    out = train_run(
        small_cfg("train.epochs=2"), tmp_path / "limit", callbacks=[lambda r: seen.append((r.epoch, r.last))]
    )
    assert out["stop_reason"] == "epochs" and seen == [(1, False), (2, True)]


def test_min_steps_holds_off_early_stopping_until_that_many_steps(tmp_path: Path) -> None:
    """A frozen model exhausts its patience after 3 evaluations; with train.min_steps the run goes on
    to the first epoch whose steps reach min_steps, and stops there by early stopping."""
    base = ("train.epochs=20", "train.lr=1e-9", "train.patience=2", "train.eval_every=1")
    plain = train_run(small_cfg(*base), tmp_path / "plain")
    assert plain["stop_reason"] == "early_stopping" and plain["epochs_run"] == 3
    per_epoch = math.ceil(plain["dataset"]["train_users"] / 64)  # batch_size 64 in SMALL
    held = train_run(small_cfg(*base, f"train.min_steps={7 * per_epoch + 1}"), tmp_path / "held")
    assert held["stop_reason"] == "early_stopping" and held["epochs_run"] == 8
    # the epoch limit still ends a run before min_steps
    cut = train_run(
        small_cfg(*base[1:], "train.epochs=5", f"train.min_steps={100 * per_epoch}"), tmp_path / "cut"
    )
    assert cut["stop_reason"] == "epochs" and cut["epochs_run"] == 5


def test_eval_every_steps_evaluates_after_each_epoch_that_crosses_a_multiple(tmp_path: Path) -> None:
    """With k steps per epoch and eval_every_steps = 2k + 1, the evaluations come after epochs 3, 5
    (crossing 2k + 1 and 4k + 2), 7 (6k + 3), and the last; patience counts those evaluations."""
    one = train_run(small_cfg("train.epochs=1"), tmp_path / "one")
    k = math.ceil(one["dataset"]["train_users"] / 64)  # batch_size 64 in SMALL
    out = train_run(small_cfg("train.epochs=8", f"train.eval_every_steps={2 * k + 1}"), tmp_path / "steps")
    evaluated = [h["epoch"] for h in out["history"] if "valid_ndcg@10" in h]
    assert evaluated == [3, 5, 7, 8]
    with pytest.raises(ConfigError, match="eval_every_steps"):
        small_cfg("train.eval_every=2", "train.eval_every_steps=10")


def test_a_run_resumed_with_more_patience_waits_as_one_started_with_it(tmp_path: Path) -> None:
    """Patience left is counted from the history on resume: a frozen model stopped by patience 2 after
    epoch 3, resumed with patience 4, goes on to epoch 5, where a run with patience 4 from the start
    stops; with the same patience it would stop at once."""
    base = ("train.epochs=20", "train.lr=1e-9", "train.eval_every=1")
    first = train_run(small_cfg(*base, "train.patience=2"), tmp_path / "run")
    assert first["stop_reason"] == "early_stopping" and first["epochs_run"] == 3 and first["best_epoch"] == 1
    more = train_run(small_cfg(*base, "train.patience=4"), tmp_path / "run")
    scratch = train_run(small_cfg(*base, "train.patience=4"), tmp_path / "scratch")
    assert more["resumed_from_epoch"] == 3
    assert (
        more["epochs_run"] == scratch["epochs_run"] == 5 and more["best_epoch"] == scratch["best_epoch"] == 1
    )


def test_token_budget_ends_the_run_once_reached_and_sets_the_schedule_length(tmp_path: Path) -> None:
    """A token budget counts training targets: the run stops after the first epoch that reaches it
    (marked `last`, stop reason token_budget), and a decaying schedule ends at the budget, not at the
    epoch limit."""
    one = train_run(small_cfg("train.epochs=1"), tmp_path / "one")
    per_epoch = one["targets_seen"]
    assert per_epoch == one["dataset"]["train_targets_per_epoch"] > 0
    for budget, epochs in ((2 * per_epoch, 2), (2 * per_epoch + 1, 3)):
        seen: list[tuple[int, bool]] = []
        out = train_run(
            small_cfg("train.epochs=20", f"train.token_budget={budget}", "train.schedule=linear"),
            tmp_path / f"b{budget}",
            callbacks=[lambda r, seen=seen: seen.append((r.epoch, r.last))],
        )
        assert out["stop_reason"] == "token_budget" and out["epochs_run"] == epochs
        assert out["targets_seen"] == epochs * per_epoch
        assert seen == [(e, e == epochs) for e in range(1, epochs + 1)]
        lrs = [h["lr"] for h in out["history"]]
        assert lrs == sorted(lrs, reverse=True) and lrs[0] < 1e-3  # decays from the first epoch
        if budget == 2 * per_epoch:  # the schedule spans exactly the budget's steps: it ends at zero
            assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_checkpoint_of_another_config_is_refused(tmp_path: Path) -> None:
    train_run(small_cfg("train.epochs=1"), tmp_path / "r")
    with pytest.raises(CheckpointMismatch, match="checkpoint of a different configuration"):
        train_run(small_cfg("train.epochs=2", "model.width=24"), tmp_path / "r")


def test_fingerprints_of_existing_configs_do_not_drift() -> None:
    """Checkpoints written by earlier versions must stay resumable: a config field added later must
    be registered in checkpoint._INTRODUCED_LATER with its old-behaviour value, or every existing
    checkpoint is refused as 'a different configuration'. These hashes were written by checkpoints
    of the ML-1M reproduction runs; change them only to invalidate old checkpoints on purpose."""
    from scalelab.config import RunConfig
    from scalelab.training.checkpoint import fingerprint

    root = Path(__file__).resolve().parents[1] / "configs"
    ml1m = "data.path=../shared/datasets/ml-1m/interactions.tsv.gz"
    movies = "data.catalogue=../shared/datasets/ml-1m/movies.dat"
    # the ML-1M configs became Meta-exact later (padded length 211, float32 buckets): these settings
    # give back the configs the checkpoints were written with
    before = ["model.max_seq_len=null", "model.time_buckets=exact"]
    frozen = {
        "default RunConfig": (RunConfig(), "99af59fad0ddeb0d"),
        "ml1m_hstu": (load_config(root / "ml1m_hstu.yaml", [ml1m, *before]), "44ee9dcab2b86e84"),
        "ml1m_hstu + movies.dat": (
            load_config(root / "ml1m_hstu.yaml", [ml1m, movies, *before]),
            "62a674d0b9458961",
        ),
        "ml1m_sasrec": (load_config(root / "ml1m_sasrec.yaml", [ml1m]), "ff60a9ae492bec86"),
        "ml1m_hstu Meta-exact": (load_config(root / "ml1m_hstu.yaml", [ml1m]), "4964f96ff849dc21"),
        "ml1m_hstu_large Meta-exact": (
            load_config(root / "ml1m_hstu_large.yaml", [ml1m]),
            "6f0ae06ba3d03b70",
        ),
    }
    drifted = {name: fingerprint(cfg) for name, (cfg, want) in frozen.items() if fingerprint(cfg) != want}
    assert not drifted, (
        f"fingerprint changed for {sorted(drifted)}: register new config fields in "
        "checkpoint._INTRODUCED_LATER with the value that keeps the old behaviour"
    )


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train.lr"):
        small_cfg("train.lr=-0.001")
    with pytest.raises(ConfigError, match=r"train.device: unknown device"):
        small_cfg("train.device=gpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            train_run(small_cfg("train.device=cuda"), tmp_path / "x")


def test_divergence_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import scalelab.training.retrieval_task as trainer

    calls = {"n": 0}
    real = trainer.sampled_softmax

    def exploding(*args, **kwargs):  # the third step's loss is NaN
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(trainer, "sampled_softmax", exploding)
    with pytest.raises(TrainingDiverged, match="epoch 1, step 3"):
        train_run(small_cfg("train.epochs=2"), tmp_path / "d")
    s = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert s["status"] == "diverged" and "loss became" in s["failure_reason"]


def popularity_ndcg(path: str) -> float:
    cfg = load_config(None, [f"data.path={path}", "data.max_seq_len=50", "data.split=leave_two_out"])
    data = load_dataset(cfg.data)
    sp = make_split(data, "leave_two_out", 50)
    counts = np.zeros(data.num_items + 1)
    for u in range(data.num_users):
        np.add.at(counts, data.items[data.ptr[u] : sp.train_end[u]], 1)
    es = eval_set(sp, "test")
    scores = torch.tensor(counts[1:], dtype=torch.float32).expand(len(es), -1).clone()
    seen = torch.zeros(len(es), data.num_items + 1, dtype=torch.bool).scatter_(1, es.items, True)[:, 1:]
    ranks = ranks_from_scores(scores, es.targets - 1, seen)
    return metrics_from_ranks(ranks, [10])["ndcg@10"]


def test_training_on_ml100k_beats_popularity_on_the_slow_and_fast_paths(tmp_path: Path) -> None:
    """The default path and the length-bucketed one with one seed: both well above popularity, and
    the bucketed one not worse than the default beyond what a change of seed does here (seeds 42 and
    7 of the default path give 0.048 and 0.037 at these settings)."""
    path = str(shared_file("ml-100k/u.data"))
    pop = popularity_ndcg(path)
    base = [f"data.path={path}", "data.max_seq_len=50", "model.width=32", "model.depth=1", "train.epochs=6",
            "train.batch_size=64", "train.device=cpu", "eval.ks=[10]", "train.eval_every=3"]  # fmt: skip
    slow = train_run(load_config(None, base), tmp_path / "slow")["best_test"]["ndcg@10"]
    fast_cfg = load_config(None, [*base, "train.bucket_pool=8"])
    fast = train_run(fast_cfg, tmp_path / "fast")["best_test"]["ndcg@10"]
    assert slow > 1.3 * pop and fast > 1.3 * pop, (slow, fast, pop)
    assert fast > 0.7 * slow, (slow, fast)


def test_length_buckets_cover_every_row_once_and_cut_padding() -> None:
    """On real Amazon Beauty (mean sequence under 10 items) length-bucketed batches hold every user
    exactly once and compute far fewer padded positions than shuffled batches."""
    from scalelab.training.batches import train_set
    from scalelab.training.trainer import _batches
    from tests.conftest import shared_file

    cfg = load_config(
        None, [f"data.path={shared_file('amazon-beauty/interactions.tsv.gz')}", "data.max_seq_len=50"]
    )
    data = load_dataset(cfg.data)
    lengths = train_set(make_split(data, cfg.data.split, 50)).lengths
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(len(lengths), generator=gen)

    def padding(batches: list[torch.Tensor]) -> float:
        slots = sum(len(b) * int(lengths[b].max()) for b in batches)
        return 1 - int(lengths.sum()) / slots

    plain, bucketed = _batches(order, lengths, 128, None, gen), _batches(order, lengths, 128, 50, gen)
    assert sorted(torch.cat(bucketed).tolist()) == list(range(len(lengths)))
    assert len(bucketed) == len(plain)
    assert padding(plain) > 0.6 and padding(bucketed) < 0.15, (padding(plain), padding(bucketed))


def test_bucketed_training_records_its_padding(tmp_path: Path) -> None:
    base = ["train.epochs=1", "tracking.mlflow_uri=null"]
    plain = train_run(small_cfg(*base), tmp_path / "p")
    bucketed = train_run(small_cfg(*base, "train.bucket_pool=4"), tmp_path / "b")
    assert bucketed["history"][0]["padding"] < plain["history"][0]["padding"]
    assert bucketed["history"][0]["loss"] == pytest.approx(plain["history"][0]["loss"], rel=0.05)


@pytest.mark.slow
def test_compiled_encoder_computes_what_the_eager_one_does(tmp_path: Path) -> None:
    """train.compile: the same losses as the eager run to float round-off (opt-in: compiling takes
    tens of seconds on a CPU)."""
    eager = train_run(small_cfg("train.epochs=2", "tracking.mlflow_uri=null"), tmp_path / "e")
    compiled = train_run(
        small_cfg("train.epochs=2", "tracking.mlflow_uri=null", "train.compile=true"), tmp_path / "c"
    )
    for a, b in zip(eager["history"], compiled["history"], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3)
