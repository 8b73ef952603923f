"""An adaptive sweep's design on real planned cells (sizes from the sweep planner), with the trials
replaced by summaries written from a known Performance Law; and, opt-in (slow), the whole sweep on
Ray Tune."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from fitters import make_law
from scalelab.errors import ConfigError
from scalelab.sweeps.adaptive import FINISHED, AdaptiveRun
from scalelab.sweeps.planning import plan
from scalelab.sweeps.spec import load_sweep

TRUE = np.array([0.5, 2.0, -0.3, -0.18, 1.05])  # best depth 10.1, width 47
SPEC = {
    "name": "adaptive_toy",
    "base": {
        "data": {"synthetic": {"num_users": 200, "num_items": 50, "mean_seq_len": 10}, "max_seq_len": 10},
        "model": {"family": "hstu", "heads": 1},
        "train": {"epochs": 1, "batch_size": 64, "num_negatives": 8},
        "eval": {"ks": [10]},
    },
    "grid": {"model.depth": [1, 2, 4, 8, 12, 16, 24], "model.width": [16, 32, 48, 64, 96, 128]},
    "adaptive": {"bootstrap": 60},
}


def write_spec(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({**spec, "output_dir": str(tmp_path / "out")}))
    return path


def fake_trial(root: Path, cid: str, depth: float, width: float) -> None:
    """What a finished trial leaves: its summary, with the truth's NDCG@10 at the selected epoch."""
    value = float(make_law("performance").predict(np.array([[depth, width]]), TRUE)[0])
    d = root / "trials" / cid
    d.mkdir(parents=True, exist_ok=True)
    summary = {"status": "finished", "final": {"ndcg@10": value}, "best_test": {"ndcg@10": value}}
    (d / "summary.json").write_text(json.dumps(summary))


def drive(run: AdaptiveRun, root: Path, by_id: dict) -> list[str]:
    asked = []
    while True:
        cid = run.next_cell()
        if cid == FINISHED:
            return asked
        assert cid is not None  # nothing runs concurrently here, so there is always an answer
        asked.append(cid)
        m = by_id[cid].config.model
        fake_trial(root, cid, m.depth, m.width)
        run.complete(cid)


def test_adaptive_sweep_asks_for_few_cells_settles_and_resumes(tmp_path: Path) -> None:
    spec, cells = load_sweep(write_spec(tmp_path, SPEC))
    root = spec.results_dir()
    planned = plan(spec, cells)
    by_id = {c.cell_id: c for c in cells}
    run = AdaptiveRun(spec.adaptive, planned, root, "ndcg@10")
    asked = drive(run, root, by_id)
    assert len(set(asked)) == len(asked) and 7 <= len(asked) < len(cells) / 2
    assert run.last is not None and run.last.reason.startswith("settled")
    best = run.grid.values[run.last.decision]
    assert best[0] in (8, 12, 16) and best[1] in (32, 48, 64)  # within one grid step of depth 12, width 48
    log = json.loads((root / "adaptive.json").read_text())
    assert log["waves"][0]["asked"] == asked[:7] and log["waves"][-1]["done"] is True
    assert log["metric"] == "ndcg@10" and log["waves"][-1]["spent"] < log["waves"][-1]["full_grid_flops"] / 3
    # the report shows every wave: cells measured, compute, decision, how settled
    from scalelab.report import Report, adaptive_section, to_markdown

    rep = Report()
    adaptive_section(rep, root)
    md = to_markdown(rep)
    assert "## Adaptive design" in md and md.count("\n| ") >= len(log["waves"]) + 1
    assert f"Final decision: depth {best[0]:g}, width {best[1]:g}" in md
    # a new driver on the same results directory: everything needed is measured, nothing to run
    again = AdaptiveRun(spec.adaptive, planned, root, "ndcg@10")
    assert again.next_cell() == FINISHED and len(again.measured) == len(asked)


def test_a_failed_cell_is_not_asked_for_again(tmp_path: Path) -> None:
    spec, cells = load_sweep(write_spec(tmp_path, SPEC))
    root = spec.results_dir()
    run = AdaptiveRun(spec.adaptive, plan(spec, cells), root, "ndcg@10")
    first = run.next_cell()
    assert first is not None and first != FINISHED
    run.complete(first, error=True)
    by_id = {c.cell_id: c for c in cells}
    assert first not in drive(run, root, by_id)


def test_adaptive_needs_the_depth_by_width_grid(tmp_path: Path) -> None:
    bad = {**SPEC, "grid": {"model.depth": [1, 2, 4], "train.lr": [0.001, 0.002, 0.003]}}
    with pytest.raises(ConfigError, match=r"adaptive sweep varies exactly model\.depth and model\.width"):
        load_sweep(write_spec(tmp_path, bad))


@pytest.mark.slow
def test_adaptive_sweep_on_ray_tune(tmp_path: Path) -> None:
    """The whole path: Tune asks the Searcher for cells, unneeded cells end as such, exit 0, and a
    re-run starts nothing."""
    from scalelab.sweeps.runner import run_sweep

    small = {**SPEC, "grid": {"model.depth": [1, 2, 3, 4], "model.width": [8, 12, 16, 24]}}
    spec, cells = load_sweep(write_spec(tmp_path, small))
    out = run_sweep(spec, cells, "spec.yaml", track=False)
    status = out.table["status"].value_counts().to_dict()
    assert out.exit_code == 0 and status.get("finished", 0) >= 7
    assert status.get("finished", 0) + status.get("unneeded", 0) == len(cells)
    last = json.loads((spec.results_dir() / "adaptive.json").read_text())["waves"][-1]
    assert last["done"] is True and last["decision"] is not None
    again = run_sweep(spec, cells, "spec.yaml", track=False)
    assert again.counts.done == 0 and again.exit_code == 0


@pytest.mark.slow
def test_adaptive_sweep_stops_cells_on_their_curve_on_ray_tune(tmp_path: Path) -> None:
    """The Tune scheduler reads the running cells' curves; stopped cells end as stopped_early, with
    the reason in the runs table, exit 0, and the report lists them."""
    from scalelab.report import write_report
    from scalelab.sweeps.runner import run_sweep

    toy = {
        **SPEC,
        "base": {**SPEC["base"], "data": {"synthetic": {"num_users": 300, "num_items": 80, "mean_seq_len": 12},
                 "max_seq_len": 12}, "train": {**SPEC["base"]["train"], "epochs": 12, "eval_every": 1}},
        "grid": {"model.depth": [1, 2, 3, 4], "model.width": [8, 12, 16, 24]},
        "adaptive": {"bootstrap": 60, "curves": True},
        "max_concurrent": 2, "resources": {"cpu": 1},
    }  # fmt: skip
    spec, cells = load_sweep(write_spec(tmp_path, toy))
    out = run_sweep(spec, cells, "spec.yaml", track=False)
    status = out.table.set_index("cell_id")["status"]
    assert out.exit_code == 0 and set(status) <= {"finished", "unneeded", "stopped_early"}
    stopped = set(status[status == "stopped_early"].index)
    log = json.loads((spec.results_dir() / "adaptive.json").read_text())
    assert stopped and stopped == set(log["stopped"]) and out.counts.stopped == len(stopped)
    reasons = out.table.set_index("cell_id").loc[sorted(stopped), "failure_reason"]
    assert all(r.startswith("stopped at epoch") for r in reasons)
    md = (write_report(str(spec.results_dir())) / "report.md").read_text()
    assert "stopped early on their learning curve" in md


def test_the_last_wave_is_recorded_when_the_grid_runs_out(tmp_path: Path) -> None:
    """On a 3 x 3 grid the design may need every cell: the wave that finds nothing left to ask is
    still decided and written (Tune asks no more once it has handed out the last trial)."""
    small = {**SPEC, "grid": {"model.depth": [1, 2, 4], "model.width": [16, 32, 64]}}
    spec, cells = load_sweep(write_spec(tmp_path, small))
    root = spec.results_dir()
    run = AdaptiveRun(spec.adaptive, plan(spec, cells), root, "ndcg@10")
    by_id = {c.cell_id: c for c in cells}
    for _ in range(len(cells)):  # exactly as many suggestions as Tune makes (num_samples = cells)
        cid = run.next_cell()
        if cid in (None, FINISHED):
            break
        m = by_id[cid].config.model
        fake_trial(root, cid, m.depth, m.width)
        run.complete(cid)
    assert run.finished
    last = json.loads((root / "adaptive.json").read_text())["waves"][-1]
    assert last["done"] is True and last["decision"] is not None and last["reason"]


def truth_at(depth: float, width: float) -> float:
    return float(make_law("performance").predict(np.array([[depth, width]]), TRUE)[0])


def show_curve(run: AdaptiveRun, cid: str, final: float, epochs: int) -> dict | None:
    """Show the design a cell's validation curve (rising towards `final`) every second epoch, as the
    Tune scheduler does; the stop it returns, if any."""
    rng = np.random.default_rng(0)
    curve = []
    for e in range(2, epochs + 1, 2):
        curve.append((e, final * (1 - np.exp(-e / 4)) + rng.normal(0, 1e-4)))
        stop = run.check_curve(cid, curve, seconds=float(e))
        if stop is not None:
            return stop
    return None


def test_cells_that_cannot_change_the_decision_are_stopped_on_their_curve(tmp_path: Path) -> None:
    spec_d = {**SPEC, "adaptive": {"bootstrap": 60, "curves": True}}
    spec_d["base"] = {**SPEC["base"], "train": {**SPEC["base"]["train"], "epochs": 30}}
    spec, cells = load_sweep(write_spec(tmp_path, spec_d))
    root, planned = spec.results_dir(), plan(spec, cells)
    by_id = {c.cell_id: c for c in cells}
    run = AdaptiveRun(spec.adaptive, planned, root, "ndcg@10")
    truth = {c.cell_id: truth_at(c.config.model.depth, c.config.model.width) for c in cells}
    first = [run.next_cell() for _ in range(7)]
    assert show_curve(run, str(first[0]), truth[str(first[0])], 30) is None  # no decision yet: no stop
    for cid in first:
        m = by_id[cid].config.model
        fake_trial(root, cid, m.depth, m.width)
        run.complete(cid)
    assert run.last is not None and run.last.decision >= 0
    decided = run.cell_at[run.last.decision]
    untried = [c for c in truth if c not in first]
    worst, best = min(untried, key=truth.get), max(untried, key=truth.get)
    assert show_curve(run, best, truth[best], 30) is None  # it may be the answer: trained to the end
    assert show_curve(run, decided, truth[decided], 30) is None  # the decision itself never stops
    stop = show_curve(run, worst, truth[worst], 30)
    assert stop is not None and stop["epoch"] < 30 and stop["sd"] > 0
    assert stop["ci95"][1] < stop["incumbent"] and truth[worst] < stop["incumbent"]
    assert stop["ci95"][0] <= truth[worst] <= stop["ci95"][1]  # the prediction holds the true final
    run.running.add(run.index_of[worst])
    run.complete(worst)  # Tune ends the trial; the design takes the prediction
    i = run.index_of[worst]
    assert run.measured[i] == stop["value"] and run.sd[i] == stop["sd"]
    log = json.loads((root / "adaptive.json").read_text())
    assert set(log["stopped"]) == {worst}
    # a resumed driver takes the stopped cell's prediction, with its uncertainty
    again = AdaptiveRun(spec.adaptive, planned, root, "ndcg@10")
    again.resume()
    assert again.measured[i] == stop["value"] and again.sd == {i: stop["sd"]}
    flops, _ = again.spent()
    per_epoch = {again.index_of[p.cell.cell_id]: p.flops_per_epoch for p in planned}
    trained = sum(per_epoch[j] * 30 for j in again.measured if j != i)  # no epochs_run: the limit, 30
    assert flops == pytest.approx(trained + per_epoch[i] * stop["epoch"])


def test_a_restarted_driver_reads_a_resumed_cells_earlier_epochs_from_its_checkpoint(tmp_path: Path) -> None:
    """After a driver restart, Tune reports a resumed cell's epochs after its checkpoint only; the
    curve scheduler takes the earlier ones from the checkpoint's history, so one new evaluation is
    enough to stop a cell whose curve already says it cannot win."""
    pytest.importorskip("ray")
    from types import SimpleNamespace

    from ray.tune.schedulers import TrialScheduler

    from scalelab.sweeps.adaptive import make_scheduler
    from scalelab.training import checkpoint as ckpt

    spec_d = {**SPEC, "adaptive": {"bootstrap": 60, "curves": True}}
    spec_d["base"] = {**SPEC["base"], "train": {**SPEC["base"]["train"], "epochs": 30}}
    spec, cells = load_sweep(write_spec(tmp_path, spec_d))
    root, planned = spec.results_dir(), plan(spec, cells)
    by_id = {c.cell_id: c for c in cells}
    truth = {c.cell_id: truth_at(c.config.model.depth, c.config.model.width) for c in cells}

    def history(cid: str, upto: int) -> list[dict]:
        rng = np.random.default_rng(0)
        return [{"epoch": e, "epoch_time_s": 1.0,
                 "test_ndcg@10": float(truth[cid] * (1 - np.exp(-e / 4)) + rng.normal(0, 1e-4))}
                for e in range(2, upto + 1, 2)]  # fmt: skip

    run = AdaptiveRun(spec.adaptive, planned, root, "ndcg@10")
    first = [run.next_cell() for _ in range(7)]
    for cid in first:
        m = by_id[cid].config.model
        fake_trial(root, cid, m.depth, m.width)
        run.complete(cid)
    worst = min((c for c in truth if c not in first), key=truth.get)
    trial = SimpleNamespace(config={"cell": worst})
    last = history(worst, 8)  # the curve of the previous test, which stops at epoch 8
    fresh = make_scheduler(run)  # a scheduler that saw nothing before: one evaluation is too few
    assert fresh.on_trial_result(None, trial, last[-1]) == TrialScheduler.CONTINUE
    d = root / "trials" / worst
    d.mkdir(parents=True, exist_ok=True)
    ckpt.save({"history": last, "epoch": 8}, d / "checkpoint.pt", "fp")
    ended = make_scheduler(run)  # an evaluation that ends the cell anyway: its measured value stands
    assert ended.on_trial_result(None, trial, {**last[-1], "last_epoch": True}) == TrialScheduler.CONTINUE
    assert worst not in run.stopped
    restarted = make_scheduler(run)
    assert restarted.on_trial_result(None, trial, last[-1]) == TrialScheduler.STOP
    assert run.stopped[worst]["epoch"] == 8 and restarted.seconds[worst] == 4.0


def test_a_budget_in_hours_becomes_flops_at_the_measured_throughput(tmp_path: Path) -> None:
    spec_d = {**SPEC, "adaptive": {"bootstrap": 60, "budget_hours": 1.0}}
    spec, cells = load_sweep(write_spec(tmp_path, spec_d))
    root, planned = spec.results_dir(), plan(spec, cells)
    by_id = {c.cell_id: c for c in cells}
    run = AdaptiveRun(spec.adaptive, planned, root, "ndcg@10")
    for _ in range(7):  # the first wave; each cell trained 10 epochs of 60 s
        cid = run.next_cell()
        assert cid not in (None, FINISHED)
        m = by_id[cid].config.model
        fake_trial(root, cid, m.depth, m.width)
        s = json.loads((root / "trials" / cid / "summary.json").read_text())
        s.update(epochs_run=10, mean_epoch_time_s=60.0)
        (root / "trials" / cid / "summary.json").write_text(json.dumps(s))
        run.complete(cid)
    flops, hours = run.spent()
    assert hours == pytest.approx(7 * 10 * 60 / 3600)
    per_epoch = {run.index_of[p.cell.cell_id]: p.flops_per_epoch for p in planned}
    assert flops == pytest.approx(sum(per_epoch[i] * 10 for i in run.measured))
    assert run.designer.budget == pytest.approx(flops / hours)  # 1 hour at the measured FLOPs per hour
    with pytest.raises(ConfigError, match="one budget"):
        load_sweep(write_spec(tmp_path, {**SPEC, "adaptive": {"budget_hours": 1, "budget_flops": 1e12}}))
