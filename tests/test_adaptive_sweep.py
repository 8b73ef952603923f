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
