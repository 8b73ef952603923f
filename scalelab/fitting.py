"""`scalelab fit` and `scalelab predict`: the `fitters` engine wired to sweeps, files and MLflow."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fitters import FitResult, fit, make_law
from fitters.table import read_table, select
from scalelab.errors import UserError

DEFAULT_X = {"performance": ["depth", "width"], "power": ["params"], "chinchilla": ["params", "tokens"]}
TIED_X = ["depth", "width", "tokens", "apen"]


@dataclass
class FitJob:
    law: str
    metric: str = "ndcg@10"
    x: list[str] | None = None
    form: str = "per_dataset"
    direction: str = "auto"
    holdout: int = 2
    bootstrap: int = 1000
    which: str = "final"
    seed: int = 0


def load_runs(
    sweep: str | None, runs: str | None, experiment: str | None, tracking_uri: str | None
) -> tuple[pd.DataFrame, Path | None, str]:
    """The results table and the sweep directory it belongs to (if any)."""
    given = [a for a in (sweep, runs, experiment) if a]
    if len(given) != 1:
        raise UserError("give exactly one of --sweep NAME, --runs PATH or --experiment NAME")
    if sweep:
        root = Path("results") / sweep if not Path(sweep).is_dir() else Path(sweep)
        path = root / "runs.parquet"
        if not path.exists():
            path = root / "runs.csv"
        if not path.exists():
            raise UserError(f"{root}: no runs table (run `scalelab sweep` first)")
        return read_table(path), root.resolve(), str(path)
    if runs:
        try:
            return read_table(runs), Path(runs).resolve().parent, runs
        except (ValueError, OSError) as e:
            msg = str(e)
            raise UserError(msg if msg.startswith(str(runs)) else f"{runs}: {msg}") from None
    return _runs_from_mlflow(str(experiment), tracking_uri), None, f"mlflow:{experiment}"


def _runs_from_mlflow(experiment: str, uri: str | None) -> pd.DataFrame:
    from mlflow.tracking import MlflowClient

    from scalelab.tracking.mlflow_run import default_tracking_uri

    client = MlflowClient(uri or default_tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise UserError(f"no MLflow experiment named {experiment!r} in {uri or default_tracking_uri()}")
    rows = []
    for r in client.search_runs([exp.experiment_id], filter_string="tags.kind = 'trial'", max_results=50_000):
        row: dict[str, Any] = {"status": r.data.tags.get("status")}
        for k, v in r.data.params.items():
            row[k.removeprefix("model.") if k in ("model.depth", "model.width") else f"cfg.{k}"] = v
        for k, v in r.data.metrics.items():
            row[k.replace("_at_", "@")] = v
        rows.append(row)
    if not rows:
        raise UserError(f"MLflow experiment {experiment!r} has no trial runs")
    return pd.DataFrame(rows)


def run_fit(table: pd.DataFrame, job: FitJob) -> tuple[FitResult, pd.DataFrame, list[str]]:
    """Fit the law of `job` to `table`; returns the result, the rows used and the variable names."""
    variables = job.x or (
        TIED_X if job.law == "performance" and job.form == "tied" else DEFAULT_X.get(job.law)
    )
    if variables is None:
        raise UserError(f"unknown law {job.law!r}; known: performance, power, chinchilla")
    options: dict[str, Any] = {}
    if job.law == "performance":
        options["form"] = job.form
    if job.law == "power":
        options["direction"] = (
            job.direction if job.direction != "auto" else ("falling" if "loss" in job.metric else "rising")
        )
    try:
        law = make_law(job.law, variables, **options)
    except ValueError as e:
        raise UserError(str(e)) from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            X, y, rows = select(table, variables, job.metric, job.which)
        except ValueError as e:
            raise UserError(str(e)) from None
    notes = [str(w.message) for w in caught]
    if len(y) < len(law.params):
        raise UserError(
            f"{len(y)} usable points cannot determine the {len(law.params)} parameters of the {job.law} law"
        )
    size = rows["non_embedding_params"].to_numpy(dtype=float) if "non_embedding_params" in rows else None
    groups = None
    if "seed" in rows and rows["seed"].nunique() > 1:  # resample configurations, not seeds
        groups = pd.factorize(
            rows[[v for v in ("depth", "width") if v in rows]].astype(str).agg("-".join, axis=1)
        )[0]
    holdout = job.holdout if job.holdout and len(y) - job.holdout >= len(law.params) else 0
    if job.holdout and not holdout:
        notes.append(f"no hold-out: {len(y)} points are too few to leave {job.holdout} out")
    try:
        result = fit(
            law, X, y, bootstrap=job.bootstrap, holdout=holdout, size=size, groups=groups, seed=job.seed
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    result.warnings = notes + result.warnings
    return result, rows, variables


def fit_payload(result: FitResult, job: FitJob, source: str, rows: pd.DataFrame) -> dict[str, Any]:
    d = result.to_dict()
    d.update(metric=job.metric, which=job.which, source=source, variables=result.law.variables)
    d["bootstrap_thetas"] = [] if result.bootstrap_thetas is None else result.bootstrap_thetas.tolist()
    d["theta"] = result.theta.tolist()
    d["options"] = {k: getattr(result.law, k) for k in ("form", "direction") if hasattr(result.law, k)}
    d["measured_range"] = {
        v: [float(rows[c].min()), float(rows[c].max())] for v, c in _var_cols(rows, result)
    }
    ctx_cols = {
        "family": "family",
        "heads": "heads",
        "head_dim": "head_dim",
        "num_items": "data_items",
        "max_len": "cfg.model.max_seq_len",
        "data_max_seq_len": "cfg.data.max_seq_len",
        "negatives": "cfg.train.num_negatives",
    }
    d["model_context"] = {k: _first(rows, c) for k, c in ctx_cols.items() if c in rows}
    return d


def _first(rows: pd.DataFrame, col: str) -> Any:
    v = rows[col].dropna()
    if v.empty:
        return None
    x = v.iloc[0]
    return x.item() if hasattr(x, "item") else x


def _var_cols(rows: pd.DataFrame, result: FitResult) -> list[tuple[str, str]]:
    from fitters.table import variable_column

    return [(v, variable_column(rows, v)) for v in result.law.variables]


def write_outputs(
    result: FitResult, payload: dict[str, Any], X_rows: pd.DataFrame, out_dir: Path, job: FitJob
) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{job.law}{'-tied' if job.law == 'performance' and job.form == 'tied' else ''}-{job.metric.replace('@', '_at_')}"
    json_path = out_dir / f"{name}.json"
    json_path.write_text(json.dumps(payload, indent=2, default=float))
    png_path = out_dir / f"{name}.png"
    plot_fit(result, X_rows, job, png_path)
    return json_path, png_path


def plot_fit(result: FitResult, rows: pd.DataFrame, job: FitJob, path: Path) -> None:
    """Points, fitted curves and 95% bands against the first variable, one line per value of the
    second (if any); held-out points circled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fitters.table import variable_column

    law = result.law
    cols = [variable_column(rows, v) for v in law.variables]
    X = rows[cols].to_numpy(dtype=float)
    y = rows[next(c for c in rows.columns if c in (f"{job.which}_{job.metric}", job.metric))].to_numpy(
        dtype=float
    )
    held = {tuple(r["x"]) for r in result.holdout.get("rows", [])}
    fig, (ax, rax) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120, gridspec_kw={"width_ratios": [3, 2]})
    groups = np.unique(X[:, 1]) if X.shape[1] > 1 else [None]
    cmap = plt.get_cmap("viridis", max(2, len(groups)))
    for gi, gval in enumerate(groups):
        sel = np.ones(len(X), bool) if gval is None else X[:, 1] == gval
        color = cmap(gi)
        label = None if gval is None else f"{law.variables[1]} = {gval:g}"
        ax.scatter(X[sel, 0], y[sel], color=color, zorder=3, label=label)
        for xi, yi, row in zip(X[sel, 0], y[sel], X[sel], strict=True):
            if tuple(row.tolist()) in held:
                ax.scatter([xi], [yi], s=160, facecolors="none", edgecolors="red", zorder=4)
        grid = np.geomspace(X[sel, 0].min() / 1.5, X[sel, 0].max() * 1.5, 80)
        G = np.repeat(X[sel][:1], len(grid), axis=0)
        G[:, 0] = grid
        ax.plot(grid, result.predict(G), color=color)
        lo, hi = result.predict_interval(G)
        ax.fill_between(grid, lo, hi, color=color, alpha=0.15)
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ticks = np.unique(X[:, 0])
    if len(ticks) <= 12:  # label the measured values themselves (depths, widths), not powers of ten
        ax.set_xticks(ticks)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(_axis_label(law.variables[0]))
    ax.set_ylabel(f"{job.which} {job.metric} (test)")
    ax.set_title(
        f"{law.name} law: R^2 {result.r2:.3f}"
        + (
            f", held-out mean rel. error {result.holdout['mean_rel_error']:.1%}"
            if "mean_rel_error" in result.holdout
            else ""
        )
    )
    if held:
        ax.scatter([], [], s=160, facecolors="none", edgecolors="red", label="held out")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    # residuals against the fitted value: structure here means the law misses a trend
    fitted = result.predict(X)
    rax.axhline(0, color="gray", lw=0.8)
    rax.scatter(fitted, y - fitted, color="tab:blue")
    for i, row in enumerate(X):
        if tuple(row.tolist()) in held:
            rax.scatter([fitted[i]], [y[i] - fitted[i]], s=160, facecolors="none", edgecolors="red")
    rax.set_xlabel(f"fitted {job.metric}")
    rax.set_ylabel(f"measured - fitted {job.metric}")
    rax.set_title("Residuals")
    rax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _axis_label(var: str) -> str:
    return {
        "depth": "depth (blocks)",
        "width": "width (embedding dim)",
        "params": "non-embedding parameters",
        "tokens": "training tokens (targets per epoch)",
        "compute": "training FLOPs per epoch",
    }.get(var, var)


def log_to_mlflow(
    payload: dict[str, Any], sweep_dir: Path | None, files: list[Path], uri: str | None
) -> str | None:
    """A run for the fit, child of the sweep's parent run when the sweep has one."""
    from scalelab.tracking.mlflow_run import RunLogger, default_tracking_uri

    parent = None
    experiment = "fits"
    if sweep_dir is not None and (sweep_dir / "sweep.json").exists():
        state = json.loads((sweep_dir / "sweep.json").read_text())
        parent, uri = state.get("parent_run_id"), uri or state.get("tracking_uri")
        spec = json.loads((sweep_dir / "spec.json").read_text()) if (sweep_dir / "spec.json").exists() else {}
        experiment = spec.get("tracking", {}).get("experiment", experiment)
    lg = RunLogger(
        uri or default_tracking_uri(),
        experiment,
        f"fit-{payload['law']}-{payload['metric']}",
        tags={"kind": "fit", "law": payload["law"]},
        parent_run_id=parent,
    )
    lg.log_params(
        {
            "law": payload["law"],
            "metric": payload["metric"],
            "variables": ",".join(payload["variables"]),
            **{f"options.{k}": v for k, v in payload.get("options", {}).items()},
        }
    )
    metrics = {"r2": payload["r2"], "rmse": payload["rmse"], "n_points": payload["n_points"]}
    metrics.update({f"param_{k}": v for k, v in payload["params"].items()})
    if "mean_rel_error" in payload.get("holdout", {}):
        metrics["holdout_mean_rel_error"] = payload["holdout"]["mean_rel_error"]
    lg.log_metrics(metrics, step=0)
    for f in files:
        lg.log_artifact(f)
    lg.finish()
    return lg.run_id


# ---------------------------------------------------------------------------------------- predict


def load_fit(path: Path) -> tuple[FitResult, dict[str, Any]]:
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable fit ({e.__class__.__name__})") from None
    law = make_law(d["law"], d["variables"], **d.get("options", {}))
    if hasattr(law, "t0") and "t0" in d:
        law.t0 = d["t0"]
    res = FitResult(law, np.array(d["theta"]), d["loss"], d["converged"], d["n_points"], d["r2"], d["rmse"])
    res.bootstrap_thetas = np.array(d["bootstrap_thetas"]) if d.get("bootstrap_thetas") else None
    return res, d


def candidate_params(ctx: dict[str, Any], depth: int, width: int) -> int | None:
    """Exact non-embedding parameters of a candidate, when the fit knows the model context."""
    if not ctx.get("family"):
        return None
    from scalelab.config import ModelConfig
    from scalelab.models.accounting import size_report
    from scalelab.models.registry import resolve

    heads = int(ctx.get("heads") or 1)
    if width % heads:
        return None
    max_len = int(ctx.get("max_len") or (int(ctx.get("data_max_seq_len") or 200) + 1))
    spec = resolve(ModelConfig(family=ctx["family"], depth=depth, width=width, heads=heads), max_len)
    return size_report(spec, int(ctx.get("num_items") or 1)).non_embedding_params


def best_config(
    res: FitResult,
    d: dict[str, Any],
    max_params: int | None,
    depths: list[int],
    widths: list[int],
    fixed: dict[str, float],
) -> dict[str, Any] | None:
    """The best (depth, width) on a candidate grid under a parameter budget, with its interval."""
    variables = res.law.variables
    if variables[:2] != ["depth", "width"]:
        return None
    best = None
    for L in depths:
        for h in widths:
            n = candidate_params(d.get("model_context", {}), L, h)
            if max_params is not None and (n is None or n > max_params):
                continue
            x = np.array([[L, h, *[fixed[v] for v in variables[2:]]]], dtype=float)
            yhat = float(res.predict(x)[0])
            if best is None or (yhat > best["predicted"]) == res.law.higher_is_better:
                lo, hi = res.predict_interval(x)
                best = {
                    "depth": L,
                    "width": h,
                    "non_embedding_params": n,
                    "predicted": yhat,
                    "ci95": [float(lo[0]), float(hi[0])],
                }
    return best
