"""`scalelab fit` and `scalelab predict` as a user runs them: decisions with intervals inside the trust
region, budgets, identifiability, and the misleading outputs of the first version gone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from fitters import make_law


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scalelab", *args], capture_output=True, text=True, timeout=300,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def quickstart_like(tmp_path: Path) -> Path:
    """The quickstart sweep's measured table (depth {1,2,4} x width {16,32,64}, 3 epochs, HSTU on the
    synthetic data): the fit whose `predict` recommended depth 64 with an interval reaching 18."""
    ndcg = {(1, 16): 0.1957, (1, 32): 0.2612, (1, 64): 0.3055, (2, 16): 0.1651, (2, 32): 0.2567,
            (2, 64): 0.3068, (4, 16): 0.1726, (4, 32): 0.2603, (4, 64): 0.3115}  # fmt: skip
    rows = [
        {"name": f"hstu-L{d}-D{w}", "status": "finished", "family": "hstu", "depth": d, "width": w,
         "heads": 1, "head_dim": w, "data_items": 200, "cfg.model.max_seq_len": 31,
         "non_embedding_params": 0, "final_ndcg@10": v, "best_epoch": 3, "epochs_run": 3}
        for (d, w), v in ndcg.items()
    ]  # fmt: skip
    path = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_quickstart_fit_and_predict_stay_in_the_trust_region(tmp_path: Path) -> None:
    table = quickstart_like(tmp_path)
    p = run("fit", "--runs", str(table), "--no-track", "--bootstrap", "100", "--holdout", "none")
    assert p.returncode == 0, p.stderr
    assert "9 of 9 cells had not converged" in p.stderr
    fit_json = tmp_path / "fits" / "performance-ndcg_at_10.json"
    d = json.loads(fit_json.read_text())
    dec = d["decision"]
    region = dec["region"]
    assert region["depth"] == [1.0, 8.0] and region["width"] == [8.0, 128.0]
    for v in ("depth", "width"):
        assert region[v][0] <= dec["values"][v] <= region[v][1]
        lo, hi = dec["ci95"][v]
        assert region[v][0] <= lo <= hi <= region[v][1]
    if dec["status"] == "edge":
        assert "no interior optimum" in p.stdout
    for budget in (["--max-params", "50000"], []):
        q = run("predict", "--fit", str(fit_json), *budget)
        assert q.returncode == 0, q.stderr
        assert "depth 64" not in q.stdout and "decision:" in q.stdout
        if "no interior optimum" not in q.stdout:
            assert "95% intervals" in q.stdout
    # the interval of a prediction never leaves [0, 1] for NDCG
    q = run("predict", "--fit", str(fit_json), "--at", "depth=8,width=128")
    lo, hi = (float(x) for x in q.stdout.split("[")[1].split("]")[0].split(","))
    assert 0.0 <= lo <= hi <= 1.0
    assert "extrapolated" in q.stdout and "beyond" not in q.stdout  # the trust region's corner: inside it
    # the first version's "best" (depth 64): flagged as beyond the trust region, its interval cut at [0, 1]
    q = run("predict", "--fit", str(fit_json), "--at", "depth=64,width=104")
    assert q.returncode == 0, q.stderr
    assert "beyond" in q.stdout and "metric's range" in " ".join(q.stdout.split())


def test_chinchilla_with_constant_tokens_reports_b_and_beta_as_not_identifiable(tmp_path: Path) -> None:
    table = quickstart_like(tmp_path)
    t = pd.read_csv(table)
    t["non_embedding_params"] = t["depth"] * t["width"] ** 2 * 5
    t["data_train_targets_per_epoch"] = 55_689
    t.to_csv(table, index=False)
    p = run("fit", "--runs", str(table), "--law", "chinchilla", "--no-track", "--bootstrap", "50",
            "--holdout", "none")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "not identifiable" in p.stdout and "b, beta are not identifiable" in p.stderr
    d = json.loads((tmp_path / "fits" / "chinchilla-ndcg_at_10.json").read_text())
    assert set(d["ci95"]) == {"e", "a", "alpha"} and "decision" not in d
    assert any("no compute allocation" in w for w in d["warnings"])
    # how far the law is taken: params to 2x, the tokens (3 epochs of 55,689) kept at the one value measured
    assert d["extrapolation"]["at"] == {
        "params": 2 * t["non_embedding_params"].max(),
        "train_tokens": 167_067,
    }
    assert "train_tokens 167,067, its one measured value" in p.stdout


def test_chinchilla_allocation_at_a_flop_budget_has_intervals(tmp_path: Path) -> None:
    law = make_law("chinchilla")
    truth = np.array([np.log(1.69), np.log(406.4), 0.34, np.log(410.7), 0.28])
    rng = np.random.default_rng(0)
    rows = []
    for N in np.geomspace(1e5, 1e8, 5):
        for D in np.geomspace(1e6, 1e9, 4):
            loss = float(law.predict(np.array([[N, D]]), truth)[0]) * np.exp(rng.normal(0, 0.002))
            rows.append({"name": f"n{N:.0f}-d{D:.0f}", "status": "finished", "non_embedding_params": N,
                         "data_train_targets_per_epoch": D, "epochs_run": 1, "final_loss": loss,
                         "flops_per_token": 6 * N + 6 * 64 * 129})  # fmt: skip
    table = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    p = run("fit", "--runs", str(table), "--law", "chinchilla", "--metric", "loss", "--no-track",
            "--bootstrap", "60", "--holdout", "none")  # fmt: skip
    assert p.returncode == 0, p.stderr
    fit_json = tmp_path / "fits" / "chinchilla-loss.json"
    q = run("predict", "--fit", str(fit_json), "--max-flops", "1e16")
    assert q.returncode == 0, q.stderr
    assert "params" in q.stdout and "train_tokens" in q.stdout and "95% intervals" in q.stdout
    q = run("predict", "--fit", str(fit_json), "--max-flops", "1e30")
    assert q.returncode == 2 and "outside the measured regime" in q.stderr


def test_predict_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    table = quickstart_like(tmp_path)
    assert (
        run("fit", "--runs", str(table), "--no-track", "--bootstrap", "20", "--holdout", "none").returncode
        == 0
    )
    fit_json = str(tmp_path / "fits" / "performance-ndcg_at_10.json")
    for args, needle in [
        (["--max-params", "-5"], "--max-params must be positive"),
        (["--params-kind", "some"], "--params-kind"),
        (["--trust", "0.5"], "--trust"),
        (["--max-tokens", "1e6"], "does not model training tokens"),
        (["--max-params", "10"], "no candidate configuration fits the budget"),
    ]:
        q = run("predict", "--fit", fit_json, *args)
        assert q.returncode == 2 and needle in q.stderr, (args, q.stderr)
        assert "Traceback" not in q.stderr
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"law": "power"}))
    q = run("predict", "--fit", str(broken))
    assert q.returncode == 2 and "not a fit written by `scalelab fit`" in q.stderr
    q = run("fit", "--runs", str(table), "--no-track", "--opt", "colour=red")
    assert q.returncode == 2 and "has no option 'colour'" in q.stderr
    q = run("fit", "--runs", str(table), "--no-track", "--law", "power", "--form", "tied")
    assert q.returncode == 2 and "has no option 'form'" in q.stderr


def test_fit_uses_the_best_validation_epoch_when_the_runs_had_one(tmp_path: Path) -> None:
    """`--which auto` (the default): on the real Beauty sweep's runs table (leave-two-out, early stopping
    on validation) the law is fitted to the test metric at the best validation epoch, as `scalelab
    report` shows it; on a table without validation metrics, to the last epoch."""
    from fitters.table import resolve_which

    beauty = (
        Path(__file__).resolve().parents[1] / "results" / "reference" / "laws_real" / "laws_real_beauty.csv"
    )
    table = pd.read_csv(beauty)
    assert resolve_which(table) == "best" and resolve_which(table, "final") == "final"
    no_valid = table.assign(**{c: np.nan for c in table.columns if c.startswith("valid_best_")})
    assert resolve_which(no_valid) == "final"
    assert resolve_which(pd.read_csv(quickstart_like(tmp_path))) == "final"
    runs = tmp_path / "beauty" / "runs.csv"  # a copy: the fit is written beside the table
    runs.parent.mkdir()
    table.to_csv(runs, index=False)
    p = run("fit", "--runs", str(runs), "--bootstrap", "50", "--no-track", "--holdout", "none")
    assert p.returncode == 0, p.stderr
    fit = json.loads((runs.parent / "fits" / "performance-ndcg_at_10.json").read_text())
    assert fit["which"] == "best"
    p = run("fit", "--runs", str(runs), "--which", "latest", "--no-track")
    assert p.returncode == 2 and "--which 'latest'" in p.stderr and "Traceback" not in p.stderr
