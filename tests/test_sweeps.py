"""Sweeps on a real local Ray: tracking, retries, divergence, interruption and resume, clusters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sweep_helpers import BASE, cell_ids, free_port, mlflow_runs, start_sweep, sweep, write_spec

from scalelab.errors import ConfigError
from scalelab.run_record import RunRecord
from scalelab.sweeps.results import CELL_COLUMNS, record_from_row
from scalelab.sweeps.spec import load_sweep


def fault_sweep(tmp_path: Path) -> tuple[list[str], subprocess.CompletedProcess[str]]:
    """Six cells, five faults: an exception after epoch 1 (once; retried, resumes), a NaN loss, an
    exception every attempt, the worker SIGKILLed mid-epoch 2 (once; retried from its checkpoint),
    an out-of-memory error; one clean cell."""
    spec = write_spec(tmp_path, "faults", grid={"model.depth": [1, 2], "model.width": [8, 16, 24]})
    ids = cell_ids(spec)
    faults = f"crash_once@{ids[0]},nan@{ids[1]},crash@{ids[2]},kill_once@{ids[3]},oom@{ids[4]}"
    return ids, sweep(str(spec), env={"SCALELAB_FAULTS": faults})


def test_sweep_survives_crashes_kills_divergence_and_oom(tmp_path: Path) -> None:
    """The fault sweep's cells end as they should, retried cells resume from their checkpoint, and
    MLflow holds every cell once (the retried cells' metrics against a clean run: the slow test below)."""
    ids, p = fault_sweep(tmp_path)
    assert p.returncode == 1, p.stderr  # diverged, failed and oom trials -> non-zero exit
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    assert "3 finished, 0 already done, 1 diverged, 2 failed of 6" in p.stdout, p.stdout
    table = pd.read_csv(tmp_path / "faults" / "runs.csv")
    assert len(table) == 6
    status = dict(zip(table["cell_id"], table["status"], strict=True))
    reason = table.set_index("cell_id")["failure_reason"]
    assert status[ids[0]] == "finished"  # crashed once, retried, resumed
    assert status[ids[1]] == "diverged"
    assert "loss became nan" in reason[ids[1]]
    assert status[ids[2]] == "failed"  # crashed on every attempt: retried, then marked failed
    assert "injected crash" in reason[ids[2]]
    assert status[ids[3]] == "finished"  # killed mid-epoch, retried from its checkpoint
    assert status[ids[4]] == "oom" and "out of memory" in reason[ids[4]]
    assert status[ids[5]] == "finished"
    for cid in (ids[0], ids[3]):
        s = json.loads((tmp_path / "faults" / "trials" / cid / "summary.json").read_text())
        assert s["resumed_from_epoch"] == 1  # the retry continued from the epoch-1 checkpoint
    runs = mlflow_runs(tmp_path, "faults")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 6
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    names = {r.info.run_name for r in children}
    assert "hstu-L1-D8-f1.00-s42" in names
    finished = [r for r in children if r.data.tags.get("status") == "finished"]
    assert len(finished) == 3 and all("hr_at_10" in r.data.metrics for r in finished)
    failed = [r for r in children if r.data.tags.get("status") == "failed"]
    assert len(failed) == 1 and "injected crash" in failed[0].data.tags["failure_reason"]
    assert [r.data.tags.get("status") for r in children].count("oom") == 1
    # the per-epoch history is there exactly once per epoch (step = epoch), retried cells included
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for r in finished:
        assert sorted(m.step for m in client.get_metric_history(r.info.run_id, "loss")) == [1, 2]


@pytest.mark.slow  # opt-in (make test-all): a second sweep; keeps the default run under 10 minutes
def test_retried_cells_end_exactly_where_a_clean_run_ends(tmp_path: Path) -> None:
    ids, p = fault_sweep(tmp_path)
    assert p.returncode == 1, p.stderr
    # the same two cells without faults, in a sweep of their own: identical final metrics
    ref = write_spec(
        tmp_path, "reference", grid={}, configs=[{"model.depth": d, "model.width": 8} for d in (1, 2)]
    )
    assert sorted(cell_ids(ref)) == sorted([ids[0], ids[3]])
    p = sweep(str(ref), "--no-track")
    assert p.returncode == 0, p.stderr
    for cid in (ids[0], ids[3]):
        a = json.loads((tmp_path / "faults" / "trials" / cid / "summary.json").read_text())
        b = json.loads((tmp_path / "reference" / "trials" / cid / "summary.json").read_text())
        assert a["final"] == b["final"] and [h["loss"] for h in a["history"]] == [
            h["loss"] for h in b["history"]
        ]


@pytest.mark.slow  # ~56 s; opt-in (make test-all): trial kills and crashes stay in the default run
def test_interrupted_sweep_finishes_on_rerun_without_duplicates(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path, "interrupt", max_concurrent=1, base={**BASE, "train": {**BASE["train"], "epochs": 3}}
    )
    proc = start_sweep(str(spec))
    trials = tmp_path / "interrupt" / "trials"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(trials.glob("*/summary.json"))) < 2:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    done_before = len(list(trials.glob("*/summary.json")))
    assert 2 <= done_before < 4, "the sweep should have been interrupted after 2 trials"
    # the exit status says so, and the cells left to run are named
    assert proc.returncode == 3, stderr[-2000:]
    left = [c for c in cell_ids(spec) if not (trials / c / "summary.json").exists()]
    assert f"interrupted: {len(left)} of 4 cells not run to the end" in stderr, stderr[-2000:]
    assert all(c in stderr for c in left), stderr[-2000:]
    assert "Traceback" not in stderr
    # the runs table tells a cell that never trained (pending) from one with training to resume
    status = pd.read_csv(tmp_path / "interrupt" / "runs.csv").set_index("cell_id")["status"]
    for c in left:
        if (trials / c / "checkpoint.pt").exists():
            assert status[c] == "interrupted", c
        elif not (trials / c).exists():
            assert status[c] == "pending", c
    if done_before == 2:  # one trial at a time: the fourth cell was never reached
        assert (status[left] == "pending").sum() >= 1, status
    p = sweep(str(spec))
    assert p.returncode == 0, p.stderr
    assert "already done" in p.stdout
    table = pd.read_csv(tmp_path / "interrupt" / "runs.csv")
    assert len(table) == 4 and (table["status"] == "finished").all()
    children = [r for r in mlflow_runs(tmp_path, "interrupt") if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 4, [r.info.run_name for r in children]
    parents = [r for r in mlflow_runs(tmp_path, "interrupt") if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1


@pytest.mark.slow  # opt-in (make test-all): keeps the default run under 10 minutes
def test_sweep_on_an_existing_ray_cluster(tmp_path: Path) -> None:
    """A head started with `ray start --head` (in --block mode, so that stopping it means ending that
    process group: a plain `ray stop` would also stop every other Ray on the machine)."""
    ray = str(Path(sys.executable).parent / "ray")
    port = free_port()
    env = {**os.environ, "RAY_ADDRESS": ""}
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
         "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        spec = write_spec(tmp_path, "cluster", grid={"model.depth": [1], "model.width": [8, 16]})
        deadline = time.time() + 120
        p = None
        while time.time() < deadline:  # the head needs a few seconds before it accepts drivers
            p = sweep(str(spec), "--address", f"127.0.0.1:{port}")
            if p.returncode == 0 or "cannot start or reach Ray" not in p.stderr:
                break
            time.sleep(3)
        assert p is not None and p.returncode == 0, p.stderr if p else "no attempt"
        table = pd.read_csv(tmp_path / "cluster" / "runs.csv")
        assert len(table) == 2 and (table["status"] == "finished").all()
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        # `ray stop` would also forget the cluster address it recorded; do that part too
        Path("/tmp/ray/ray_current_cluster").unlink(missing_ok=True)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"grid": {"model.depth": []}}, "axis 'model.depth' is empty"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"grid": {"model.depth": [-1]}}, "model.depth"),
        ({"grid": {"model.family": ["bert"]}}, "unknown family 'bert'"),
        ({"resources": {"cpu": 1, "gpu": 1}}, "asks for gpu=1"),
        ({"grid": {"model.depht": [1]}}, "model.depht: unknown key"),
    ],
)
def test_bad_specs_are_rejected_before_anything_runs(tmp_path: Path, change: dict, needle: str) -> None:
    spec = write_spec(tmp_path, "bad")
    raw = yaml.safe_load(spec.read_text())
    raw.update(change)
    spec.write_text(yaml.safe_dump(raw))
    for args in ([str(spec), "--dry-run"], [str(spec)]):
        p = sweep(*args, "--no-track")
        assert p.returncode == 2, p.stdout + p.stderr
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and needle in lines[0], p.stderr
        assert "Traceback" not in p.stderr
    assert not (tmp_path / "bad" / "trials").exists()


def test_spec_expansion_grid_zip_configs(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path, "shape",
        grid={"model.depth": [1, 2]},
        zip={"model.width": [8, 16], "model.heads": [1, 2]},
        configs=[{"model.family": "hstu"}, {"model.family": "llama"}],
    )  # fmt: skip
    _, cells = load_sweep(spec)
    assert len(cells) == 2 * 2 * 2
    combos = {
        (c.config.model.depth, c.config.model.width, c.config.model.heads, c.config.model.family)
        for c in cells
    }
    assert (2, 16, 2, "llama") in combos and (1, 8, 2, "hstu") not in combos
    again = [c.cell_id for c in load_sweep(spec)[1]]
    assert again == [c.cell_id for c in cells]  # deterministic ids
    with pytest.raises(ConfigError, match="zip axes must have equal lengths"):
        bad = write_spec(tmp_path, "shape2", zip={"model.width": [8, 16], "model.heads": [1]})
        load_sweep(bad)


def test_every_shipped_sweep_is_valid() -> None:
    root = Path(__file__).resolve().parents[1] / "sweeps"
    specs = sorted(root.glob("*.yaml"))
    assert {p.stem for p in specs} >= {
        "quickstart", "hstu_depth", "hstu_width", "data_scaling", "arch_compare", "ablations", "sasrec_plus",
        "fuxi_alpha", "performance_law",
    }  # fmt: skip
    for path in specs:
        spec, cells = load_sweep(path)
        trials = spec.expected_cost.get("trials")
        # an adaptive sweep runs the cells its design asks for: at most the grid
        expect = (
            trials.startswith(f"up to {len(cells)} ")
            if spec.adaptive and trials
            else trials == str(len(cells))
        )
        assert cells and spec.expected_cost.get("cpu") and expect, path


def test_cell_ids_of_shipped_specs_do_not_drift() -> None:
    """A sweep's finished cells are found by id on a re-run: a config field added later must be
    registered in spec.CELL_ID_INTRODUCED_LATER with its old-behaviour value, or every existing sweep
    would run again from scratch. These ids were written by runs of the quickstart and of the real-data
    Beauty and ML-1M sweeps; change them only to invalidate old results on purpose."""
    from scalelab.sweeps.spec import load_sweep

    root = Path(__file__).resolve().parents[1] / "sweeps"
    frozen = {
        "quickstart.yaml": {"0c052fd83777", "1049ecd0a8e6", "52437d87e505", "7464a70019ce", "78f8e3211779",
                            "ba02cdc9a8c2", "ccdfaea8aa71", "d6c01532c586", "f800ba918596"},
        "laws_real_beauty.yaml": {"16f144fc0e57", "228c14827ee1", "2505699ee777", "3243599d8f95", "4e61d19cbfd9",
                                  "54de678295f2", "6f0225419ed5", "73a4288ce605", "749771881a2a", "7fb4e638cd66",
                                  "b0df5fed46bd", "cdac71368549", "d31eabd05b75", "d3849b6c9c2c", "d812fd0716a3",
                                  "db664067ec4b"},
        "laws_real_ml1m.yaml": {"1dd6740b9168", "287e2ea0c073", "41bcdf2f6c24", "6defea32e3d3", "9002e0266771",
                                "9dd5bc2534c3", "b072d22468db", "bac3e43cbcea", "bb9a4d6ba10a", "c1d5003ddc06",
                                "c433608b45cb", "cc5cac94779b", "d1152695dff4", "d5a0e3b19f49", "e67ada9a2db3",
                                "fc4e5f75ac34"},
    }  # fmt: skip
    for name, ids in frozen.items():
        _, cells = load_sweep(root / name)
        assert {c.cell_id for c in cells} == ids, f"cell ids of sweeps/{name} changed"


@pytest.mark.slow  # ~37 s; opt-in (make test-all) to keep the default run under 10 minutes
def test_sweep_resumes_from_a_runs_table_kept_elsewhere(tmp_path: Path) -> None:
    """`--resume-from TABLE`: the cells TABLE lists as finished with this sweep's settings are not run
    again and their rows (verbatim) join the runs table; a failed row, or one of another sweep, is not
    carried. A later invocation without the option keeps them. The kept table here is written by hand
    for the three cells, with metric values no training would produce."""
    base = {**BASE, "train": {**BASE["train"], "epochs": 1}}
    spec = write_spec(tmp_path, "carry", base=base, grid={"model.depth": [1], "model.width": [8, 16, 24]})
    ids = cell_ids(spec)
    kept = pd.DataFrame(
        [
            {
                "cell_id": ids[0],
                "name": "kept-a",
                "status": "finished",
                "epochs_run": 7,
                "best_ndcg@10": 0.4321,
            },
            {
                "cell_id": ids[1],
                "name": "kept-b",
                "status": "finished",
                "epochs_run": 9,
                "best_ndcg@10": 0.1234,
            },
            {"cell_id": ids[2], "name": "kept-c", "status": "failed", "epochs_run": 1, "best_ndcg@10": 0.9},
            {"cell_id": "000000000000", "name": "other", "status": "finished", "epochs_run": 3},
        ]
    )
    kept.to_csv(tmp_path / "kept.csv", index=False)
    p = sweep(str(spec), "--resume-from", str(tmp_path / "kept.csv"))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "1 finished, 2 already done (2 carried from another runs table)" in p.stdout, p.stdout
    trials = tmp_path / "carry" / "trials"
    assert not (trials / ids[0]).exists() and not (trials / ids[1]).exists()  # not run here
    assert (trials / ids[2] / "summary.json").exists()

    def check_table() -> None:
        table = pd.read_csv(tmp_path / "carry" / "runs.csv").set_index("cell_id")
        assert list(table.index) == ids  # the spec's cell order
        assert (table["status"] == "finished").all()
        assert table.loc[ids[0], "best_ndcg@10"] == 0.4321 and table.loc[ids[0], "name"] == "kept-a"
        assert table.loc[ids[1], "epochs_run"] == 9
        assert table.loc[ids[2], "best_ndcg@10"] != 0.9  # the failed row was not carried: run here

    check_table()
    children = [r for r in mlflow_runs(tmp_path, "carry") if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 3
    carried = {r.data.tags["cell_id"]: r for r in children if r.data.tags.get("carried") == "true"}
    assert set(carried) == {ids[0], ids[1]}
    # a carried run holds its results under a trained run's names (ndcg_at_10 at the selected epoch)
    assert carried[ids[0]].data.metrics["ndcg_at_10"] == 0.4321
    trained = next(r for r in children if r.data.tags["cell_id"] == ids[2])
    assert set(carried[ids[0]].data.metrics) <= set(trained.data.metrics)
    # and a trained cell's row gives back the metrics its run logged
    summary = json.loads((trials / ids[2] / "summary.json").read_text())
    row = pd.read_csv(tmp_path / "carry" / "runs.csv")
    row = row[row["cell_id"] == ids[2]].iloc[0]
    assert record_from_row(row).tracking_metrics() == pytest.approx(
        RunRecord.from_json(summary).tracking_metrics(), rel=1e-12
    )
    # every column is the cell's, its config's or the run's own (no cell column read back as a size)
    run_columns = set(RunRecord.from_json(summary).table_fields())
    assert set(row.index) == set(CELL_COLUMNS) | run_columns | {c for c in row.index if c.startswith("cfg.")}
    assert set(record_from_row(row).table_fields()) <= run_columns
    p = sweep(str(spec))  # without the option: the carried cells stay done
    assert p.returncode == 0, p.stderr[-3000:]
    assert "0 finished, 3 already done (2 carried" in p.stdout, p.stdout
    check_table()
    assert len([r for r in mlflow_runs(tmp_path, "carry") if "mlflow.parentRunId" in r.data.tags]) == 3


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        (None, "no such runs table"),
        ("cell_id,status\n000000000000,finished\n", "no finished cell of this sweep in it"),
        ("a,b\n1,2\n", "not a sweep's runs table (no column cell_id, status)"),
    ],
)
def test_resume_from_a_bad_table_is_one_line(tmp_path: Path, table: str | None, needle: str) -> None:
    spec = write_spec(tmp_path, "carrybad")
    path = tmp_path / "kept.csv"
    if table is not None:
        path.write_text(table)
    p = sweep(str(spec), "--resume-from", str(path))
    assert p.returncode == 2, p.stderr[-2000:]
    assert needle in p.stderr and str(path) in p.stderr and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "carrybad" / "trials").exists()  # nothing ran


def test_cells_whose_stopping_settings_changed_continue_from_their_old_trials(tmp_path: Path) -> None:
    """Raising the epoch limit gives every cell a new id; a cell whose training is otherwise the same
    continues from its old trial's checkpoint (the old directory stays), a cell that trains something
    else starts from scratch."""
    grid = {"model.depth": [1], "model.width": [8, 16]}
    spec = write_spec(tmp_path, "longer", grid=grid)
    old = cell_ids(spec)
    p = sweep(str(spec), "--no-track")
    assert p.returncode == 0, p.stderr[-3000:]
    base = {**BASE, "train": {**BASE["train"], "epochs": 3}}
    spec = write_spec(tmp_path, "longer", base=base, grid={**grid, "model.width": [8, 16, 24]})
    new = cell_ids(spec)
    assert not set(new) & set(old)
    p = sweep(str(spec), "--no-track")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "3 finished (2 continued from their trial under earlier settings)" in p.stdout, p.stdout
    trials = tmp_path / "longer" / "trials"
    summaries = [json.loads((trials / cid / "summary.json").read_text()) for cid in new]
    assert [s["resumed_from_epoch"] for s in summaries] == [2, 2, None]
    assert [s["epochs_run"] for s in summaries] == [3, 3, 3]
    table = pd.read_csv(tmp_path / "longer" / "runs.csv").set_index("cell_id")
    assert list(table.loc[new, "continued_from"].fillna("")) == [*old, ""]  # the old trial each went on from
    for cid in old:  # the old trials are left as they were
        assert json.loads((trials / cid / "summary.json").read_text())["epochs_run"] == 2
