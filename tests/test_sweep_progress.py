"""The sweep's ETA: cells of a size sweep differ in cost by orders of magnitude, resumed cells train
only their remaining epochs, and a smaller data fraction runs more epochs of fewer targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalelab.sweeps.progress import Counts, EventLines, TrialView, cost_exponent, eta_seconds

NOW = 100_000.0


TARGETS = 1000.0  # training targets per epoch of a full-data cell


def per_epoch(flops: float, targets: float = TARGETS) -> float:
    """The seconds per epoch of the constructed sweep: 2e-3 s x (FLOPs per target / 1e6)^0.5 per target."""
    return targets * 2e-3 * (flops / targets / 1e6) ** 0.5


def view(name: str, flops: float, targets: float = TARGETS, **kw: object) -> TrialView:
    return TrialView(name, 60, flops_per_epoch=flops, targets_per_epoch=targets, **kw)  # type: ignore[arg-type]


def finished(name: str, flops: float, first: int, last: int, targets: float = TARGETS) -> TrialView:
    took = per_epoch(flops, targets) * (last - first + 1)
    return view(
        name, flops, targets, state="finished", epoch=last, started=NOW - took, ended=NOW, first_epoch=first
    )


def sweep() -> Counts:
    c = Counts(total=6)
    c.trials = {
        "a": finished("a", 1e9, 1, 40),
        "b": finished("b", 4e9, 1, 40),
        "c": finished("c", 16e9, 31, 40),  # resumed at epoch 31: 10 epochs this time
        "d": view("d", 16e9, state="running", epoch=10, started=NOW - 80.0, first_epoch=1),
        "e": view("e", 64e9),
        "f": view("f", 4e9),
    }
    c.done, c.running = 3, 1
    return c


def test_eta_weighs_cells_by_cost_and_counts_resumed_cells_by_their_epochs() -> None:
    # by hand: the finished cells ran 40 epochs each; d has 30 left at 8 s, e 40 at 16 s, f 40 at 4 s
    expect = 30 * per_epoch(16e9) + 40 * per_epoch(64e9) + 40 * per_epoch(4e9)
    assert eta_seconds(sweep(), NOW) == pytest.approx(expect, rel=1e-6)


def test_eta_shares_the_work_among_running_trials_and_caps_epochs_at_the_maximum() -> None:
    c = sweep()
    c.trials["e"].state, c.trials["e"].started, c.trials["e"].first_epoch = "running", NOW, 1
    expect = (30 * per_epoch(16e9) + 40 * per_epoch(64e9) + 40 * per_epoch(4e9)) / 2
    assert eta_seconds(c, NOW) == pytest.approx(expect, rel=1e-6)
    c.trials["f"].epochs = 20  # a cell allowed fewer epochs than the finished ones ran
    expect -= 20 * per_epoch(4e9) / 2
    assert eta_seconds(c, NOW) == pytest.approx(expect, rel=1e-6)


def test_no_eta_before_a_cell_finished_then_one_cell_scales_by_the_default_exponent() -> None:
    c = sweep()
    for k in "abc":
        del c.trials[k]
    assert eta_seconds(c, NOW) is None
    c = Counts(total=2)
    c.trials = {"a": finished("a", 1e9, 1, 40), "b": view("b", 9e9)}
    assert eta_seconds(c, NOW) == pytest.approx(40 * per_epoch(1e9) * 9**0.5)


def test_a_smaller_data_fraction_is_expected_to_run_more_epochs_of_fewer_targets() -> None:
    c = Counts(total=3)
    c.trials = {
        "full": finished("full", 1e9, 1, 40),  # 40 epochs of 1000 targets
        "half": finished("half", 0.5e9, 1, 80, targets=500),  # the same per-target cost, 80 epochs of 500
        "eighth": view(
            "eighth", 0.125e9, targets=125
        ),  # expected: 40,000 targets in 320 epochs, capped at 60
    }
    assert eta_seconds(c, NOW) == pytest.approx(60 * per_epoch(0.125e9, 125))
    c.trials["eighth"].epochs = 1000
    assert eta_seconds(c, NOW) == pytest.approx(320 * per_epoch(0.125e9, 125))


def test_the_fitted_exponent_follows_the_data_and_is_shrunk_when_the_costs_barely_differ() -> None:
    costs = [1e8, 1e9, 1e10, 1e11]
    g, k = cost_exponent(costs, [3e-3 * c**0.8 for c in costs])  # a spread of 9 log-units squared x 2
    assert 0.75 < g < 0.8 and k == pytest.approx(3e-3 * 10 ** (9.5 * (0.8 - g)), rel=1e-6)
    g, _ = cost_exponent([1e9, 1.2e9], [1.0, 10.0])  # a tenfold time for 1.2x the cost: noise
    assert 0.5 < g < 1.0


def test_piped_lines_carry_the_eta() -> None:
    c = sweep()
    lines: list[str] = []
    EventLines(lines.append)(c)
    ended = [ln for ln in lines if " finished " in ln]
    assert len(ended) == 3 and all("ETA" in ln and "for the 3 left" in ln for ln in ended)


def test_a_resumed_sweep_has_an_eta_from_the_cells_finished_earlier(tmp_path: Path) -> None:
    """The second invocation of a sweep reads the epochs and wall time of the cells the first one
    finished (its trial summary and its state), so its first `started` line already carries an ETA."""
    from sweep_helpers import write_spec

    from scalelab.sweeps.planning import plan
    from scalelab.sweeps.runner import _earlier_view
    from scalelab.sweeps.spec import load_sweep

    spec, cells = load_sweep(write_spec(tmp_path, "eta"))
    planned = plan(spec, cells)
    first, second = planned[0], planned[-1]  # L1-D8 and L2-D16: different costs per target
    trial = tmp_path / "eta" / "trials" / first.cell.cell_id
    trial.mkdir(parents=True)
    (trial / "summary.json").write_text(json.dumps({"status": "finished", "epochs_run": 2}))
    assert _earlier_view(tmp_path / "eta", first, {"status": "finished"}) is None  # no wall time recorded
    done = _earlier_view(tmp_path / "eta", first, {"status": "finished", "wall_time_s": 30.0})
    assert done is not None and done.elapsed() == 30.0 and done.epoch == 2

    c = Counts(total=2, skipped=1, earlier=[done])
    c.trials = {"b": TrialView("b", 2, flops_per_epoch=second.flops_per_epoch,
                               targets_per_epoch=second.targets_per_epoch)}  # fmt: skip
    # by hand: one finished cell, so time per target scales with (FLOPs per target)^0.5 from it
    cost = [p.flops_per_epoch / p.targets_per_epoch for p in (first, second)]
    per_target = 30.0 / (2 * first.targets_per_epoch)
    expect = per_target * (cost[1] / cost[0]) ** 0.5 * 2 * second.targets_per_epoch
    assert cost[1] > 2 * cost[0] and eta_seconds(c, NOW) == pytest.approx(expect, rel=1e-9)
    c.trials["b"].state, c.running = "running", 1
    lines: list[str] = []
    EventLines(lines.append)(c)
    assert (
        len(lines) == 1 and " started  b " in lines[0] and "ETA" in lines[0] and "for the 1 left" in lines[0]
    )
