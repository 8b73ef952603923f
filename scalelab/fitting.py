"""`scalelab fit` and `scalelab predict`: the `fitters` engine wired to sweeps, files and MLflow."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fitters import LAWS, FitResult, Law, fit, make_law, metric_range
from fitters.decisions import DEFAULT_TRUST, Decision, allocation, best_config, trust_region
from fitters.table import read_table, resolve_which, select, unconverged
from scalelab.errors import UserError

# Variables that cannot go below a natural limit (a model has at least one block and one channel).
NATURAL = {"depth": (1.0, np.inf), "width": (1.0, np.inf)}


@dataclass
class FitJob:
    law: str
    metric: str = "ndcg@10"
    x: list[str] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    holdout: int = 2
    bootstrap: int = 1000
    which: str = "auto"  # best | final | auto (fitters.table.resolve_which)
    seed: int = 0
    method: str = "residual"
    trust: float = DEFAULT_TRUST


def build_law(job: FitJob) -> Law:
    """The law of `job` with its options: those the job gives, plus what the metric implies (a law that
    declares `direction` rises for a metric and falls for a loss; a bounded metric sets `y_range`)."""
    if job.law not in LAWS:
        raise UserError(f"unknown law {job.law!r}; known: {', '.join(LAWS)}")
    cls = LAWS[job.law]
    opts = dict(job.options)
    if "direction" in cls.OPTIONS and opts.get("direction", "auto") == "auto":
        opts["direction"] = "falling" if "loss" in job.metric else "rising"
    if "y_range" not in opts and (rng := metric_range(job.metric)) is not None:
        opts["y_range"] = rng
    try:
        return make_law(job.law, job.x, **opts)
    except ValueError as e:
        raise UserError(str(e)) from None


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
    from scalelab.tracking.mlflow_run import default_tracking_uri, open_client

    client = open_client(uri or default_tracking_uri())
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise UserError(f"no MLflow experiment named {experiment!r} in {uri or default_tracking_uri()}")
    rows = []
    for r in client.search_runs([exp.experiment_id], filter_string="tags.kind = 'trial'", max_results=50_000):
        row: dict[str, Any] = {"status": r.data.tags.get("status")}
        for k, p in r.data.params.items():
            row[k.removeprefix("model.") if k in ("model.depth", "model.width") else f"cfg.{k}"] = p
        for k, v in r.data.metrics.items():
            row[k.replace("_at_", "@")] = v
        rows.append(row)
    if not rows:
        raise UserError(f"MLflow experiment {experiment!r} has no trial runs")
    return pd.DataFrame(rows)


def run_fit(
    table: pd.DataFrame, job: FitJob, progress: Any = None, source: str = ""
) -> tuple[FitResult, pd.DataFrame, list[str]]:
    """Fit the law of `job` to `table` (read from `source`, named in errors); returns the result, the
    rows used and the variable names."""
    law = build_law(job)
    variables = law.variables
    if job.which == "auto":
        job.which = resolve_which(table, "auto")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            X, y, rows = select(table, variables, job.metric, job.which)
        except ValueError as e:
            raise UserError(f"{source}: {e}" if source else str(e)) from None
    notes = [str(w.message) for w in caught]
    if len(y) < len(law.params):
        raise UserError(
            f"{len(y)} usable points cannot determine the {len(law.params)} parameters of the {job.law} law"
        )
    late = unconverged(rows)
    if late.any():
        names = (
            rows.loc[late, "name"].astype(str).tolist()
            if "name" in rows
            else [str(i) for i in rows.index[late]]
        )
        notes.append(
            f"{int(late.sum())} of {len(rows)} cells had not converged (best validation epoch = last epoch), "
            f"so their metric may still rise: {', '.join(names)}"
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
            law,
            X,
            y,
            bootstrap=job.bootstrap,
            holdout=holdout,
            size=size,
            groups=groups,
            seed=job.seed,
            method=job.method,
            progress=progress,
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
    d["free"] = [] if result.free is None else result.free.tolist()
    d["trust"] = job.trust
    d["measured_range"] = {
        v: [float(rows[c].min()), float(rows[c].max())] for v, c in _var_cols(rows, result)
    }
    names = rows["name"].astype(str).tolist() if "name" in rows else [str(i) for i in rows.index]
    d["outlier_cells"] = [names[i] for i in result.outliers]
    d["unconverged_cells"] = [n for n, late in zip(names, unconverged(rows), strict=True) if late]
    ctx_cols = {
        "family": "family",
        "heads": "heads",
        "head_dim": "head_dim",
        "num_items": "data_items",
        "max_len": "cfg.model.max_seq_len",
        "data_max_seq_len": "cfg.data.max_seq_len",
    }
    ctx = {k: _first(rows, c) for k, c in ctx_cols.items() if c in rows}
    if {"loss_flops_per_token", "width"} <= set(rows.columns):
        # scored items per target (target + negatives), read back from the runs' own FLOP accounting
        scored = rows["loss_flops_per_token"].astype(float) / (6.0 * rows["width"].astype(float))
        ctx["negatives"] = round(float(scored.median())) - 1
    if "train_tokens" in rows:
        ctx["train_tokens"] = float(rows["train_tokens"].median())
    d["model_context"] = ctx
    if {"non_embedding_params", "flops_per_token"} <= set(rows.columns):
        curve = rows[["non_embedding_params", "flops_per_token"]].astype(float).drop_duplicates()
        d["cost_curve"] = curve.sort_values("non_embedding_params").to_numpy().tolist()
    if result.law.DECISION == "allocation" and {"train_flops", "non_embedding_params"} <= set(rows.columns):
        d["isoflop"] = isoflop_check(result, rows, job)
    try:
        dec = decide(result, d)
    except (UserError, ValueError) as e:
        d["warnings"].append(f"no decision: {e}")
        dec = None
    if dec is None:
        d["extrapolation"] = edge_prediction(result, d)
    if dec is not None:
        d["decision"] = dec.to_dict()
        if dec.status == "edge":
            d["warnings"].append(dec.message)
    return d


def isoflop_check(result: FitResult, rows: pd.DataFrame, job: FitJob) -> dict[str, Any]:
    """Chinchilla approach 2 on the same runs (several sizes per compute level), against the N_opt
    exponent of the fitted law (approach 3)."""
    from fitters.isoflop import isoflop
    from fitters.table import metric_column

    y = rows[metric_column(rows, job.metric, job.which)].to_numpy(dtype=float)
    iso = isoflop(
        rows["non_embedding_params"].to_numpy(dtype=float),
        rows["train_flops"].to_numpy(dtype=float),
        y,
        higher_is_better=result.law.higher_is_better,
    )
    law = result.law
    if hasattr(law, "allocation") and (result.identified is None or result.identified.all()):
        a, b = (law.allocation(result.theta, c)["N_opt"] for c in (1e15, 1e16))
        iso["law_exponent"] = float(np.log10(b / a))
    return iso


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
    name = "-".join([job.law, *_variant(result), job.metric.replace("@", "_at_")])
    json_path = out_dir / f"{name}.json"
    json_path.write_text(json.dumps(payload, indent=2, default=float))
    png_path = out_dir / f"{name}.png"
    plot_fit(result, X_rows, job, png_path)
    return json_path, png_path


def _variant(result: FitResult) -> list[str]:
    """Declared string options that differ from their default (e.g. the tied form), for file names;
    the direction follows the metric and is left out."""
    law = result.law
    return [
        str(v)
        for k, o in law.OPTIONS.items()
        if k != "direction" and isinstance(v := law.options.get(k), str) and v != o.default
    ]


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
    y_range = law.options.get("y_range")  # a bounded metric: the curve and band stay inside it
    fig, (ax, rax) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=120, gridspec_kw={"width_ratios": [3, 2]})
    groups = np.unique(X[:, 1]) if X.shape[1] > 1 else [None]
    curves: list[np.ndarray] = []
    cmap = plt.get_cmap("viridis", max(2, len(groups)))
    for gi, gval in enumerate(groups):
        sel = np.ones(len(X), bool) if gval is None else X[:, 1] == gval
        color = cmap(gi)
        label = None if gval is None else f"{law.variables[1]} = {gval:g}"
        ax.scatter(X[sel, 0], y[sel], color=color, zorder=3, label=label)
        for xi, yi, row in zip(X[sel, 0], y[sel], X[sel], strict=True):
            if tuple(row.tolist()) in held:
                ax.scatter([xi], [yi], s=160, facecolors="none", edgecolors="red", zorder=4)
        # the law over the measured range and 10x beyond it (extrapolation, right of the dotted line)
        grid = np.geomspace(X[sel, 0].min() / 1.5, X[:, 0].max() * EXTRAPOLATE, 120)
        G = np.repeat(X[sel][:1], len(grid), axis=0)
        G[:, 0] = grid
        central = _clip(result.predict(G), y_range)
        curves.append(central)
        ax.plot(grid, central, color=color)
        lo, hi = result.predict_interval(G)
        ax.fill_between(grid, _clip(lo, y_range), _clip(hi, y_range), color=color, alpha=0.15)
    ax.axvline(X[:, 0].max(), color="gray", ls=":", lw=1)
    ax.set_xscale("log")
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ticks = np.unique(X[:, 0])
    if len(ticks) <= 8 and ticks.max() / ticks.min() < 1e3:  # label the measured values (depths, widths)
        ax.set_xticks(np.unique(np.concatenate([ticks, [ticks.max() * EXTRAPOLATE]])))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:  # parameters, tokens: powers of ten, few enough not to overlap
        ax.xaxis.set_major_locator(LogLocator(base=10, numticks=6))
    # the view holds the data and the law's central curve; a band wider than that is cut, not the data
    shown = np.concatenate([y[np.isfinite(y)], *[c[np.isfinite(c)] for c in curves]])
    pad = 0.1 * (shown.max() - shown.min() + 1e-12)
    ax.set_ylim(shown.min() - pad, shown.max() + pad)
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


EXTRAPOLATE = 10.0  # fit plots continue the law this far past the largest measured value


def _clip(v: np.ndarray, y_range: Any) -> np.ndarray:
    return v if y_range is None else np.clip(v, y_range[0], y_range[1])


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
    tags = {"kind": "fit", "law": payload["law"], "metric": payload["metric"]}
    if sweep_dir is not None and (sweep_dir / "sweep.json").exists():
        state = json.loads((sweep_dir / "sweep.json").read_text())
        parent, uri = state.get("parent_run_id"), uri or state.get("tracking_uri")
        spec = json.loads((sweep_dir / "spec.json").read_text()) if (sweep_dir / "spec.json").exists() else {}
        experiment = spec.get("tracking", {}).get("experiment", experiment)
        tags["sweep"] = str(spec.get("name") or sweep_dir.name)  # the documented filter finds fits too
    lg = RunLogger(
        uri or default_tracking_uri(),
        experiment,
        f"fit-{payload['law']}-{payload['metric']}",
        tags=tags,
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
    dec = payload.get("decision")
    if dec:
        for k, v in dec["values"].items():
            if k in dec["region"]:
                metrics[f"decision_{k}"] = v
                if k in dec["ci95"]:
                    metrics[f"decision_{k}_lo"], metrics[f"decision_{k}_hi"] = dec["ci95"][k]
        lg.set_tags({"decision_status": dec["status"]})
    metrics["warnings"] = len(payload.get("warnings", []))
    lg.log_metrics(metrics, step=0)
    for f in files:
        lg.log_artifact(f)
    lg.finish()
    return lg.run_id


# ---------------------------------------------------------------------------------------- predict


def load_fit(path: Path) -> tuple[FitResult, dict[str, Any]]:
    try:
        d = json.loads(Path(path).read_text())
        if not isinstance(d, dict):
            raise TypeError("'law'")
        law = make_law(d["law"], d["variables"], **d.get("options", {}))
        theta = np.array(d["theta"], dtype=float)
        if theta.shape != (len(law.params),):
            raise TypeError(f"'theta': {theta.size} values for the {len(law.params)} parameters")
        res = FitResult(law, theta, d["loss"], d["converged"], d["n_points"], d["r2"], d["rmse"])
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable fit ({e.__class__.__name__}: {e})") from None
    except (KeyError, TypeError) as e:
        raise UserError(f"{path}: not a fit written by `scalelab fit` (missing or malformed {e})") from None
    res.bootstrap_thetas = np.array(d["bootstrap_thetas"]) if d.get("bootstrap_thetas") else None
    res.free = np.array(d["free"], dtype=bool) if d.get("free") else None
    ident = d.get("identifiable", {})
    res.identified = np.array([ident.get(p.name, True) for p in law.params], dtype=bool) if ident else None
    res.undetermined = list(d.get("undetermined", []))
    return res, d


def decision_values(dec: dict[str, Any], fmt: Any = lambda v: f"{v:.4g}") -> str:
    """'depth 8 [1, 8], width 112 [56, 128]': the decided values with their 95% intervals, for the
    variables the decision ranged over."""
    region = dec.get("region", dec["values"])
    ci = dec.get("ci95", {})
    return ", ".join(
        f"{k} {fmt(v)}" + (f" [{fmt(ci[k][0])}, {fmt(ci[k][1])}]" if k in ci else "")
        for k, v in dec["values"].items()
        if k in region
    )


@dataclass
class Budget:
    """What a researcher can afford: parameters (total or non-embedding), training FLOPs of a run
    (item-scoring layer included), training tokens."""

    max_params: float | None = None
    params_kind: str = "total"
    max_flops: float | None = None
    max_tokens: float | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.max_params, self.max_flops, self.max_tokens))

    def describe(self) -> str:
        parts = []
        if self.max_params is not None:
            parts.append(f"at most {self.max_params:,.0f} {self.params_kind.replace('_', '-')} parameters")
        if self.max_flops is not None:
            parts.append(f"at most {self.max_flops:.3g} training FLOPs")
        if self.max_tokens is not None:
            parts.append(f"at most {self.max_tokens:.3g} training tokens")
        return " and ".join(parts)


def candidate_sizes(ctx: dict[str, Any], depth: int, width: int) -> dict[str, float] | None:
    """Exact parameters and training FLOPs per token of a candidate, when the fit knows the model
    context (family, heads, catalogue, history length, scored negatives)."""
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
    rep = size_report(spec, int(ctx.get("num_items") or 1), int(ctx.get("negatives") or 128))
    return {
        "non_embedding": float(rep.non_embedding_params),
        "total": float(rep.total_params),
        "flops_per_token": rep.flops_per_token,
    }


def _candidates(res: FitResult, d: dict[str, Any], region: dict[str, tuple[float, float]]) -> np.ndarray:
    """Depth x width candidates covering the region (every depth; widths in steps of 8 and the
    measured ones), other variables held at the middle of their measured range."""
    variables = res.law.variables
    (d_lo, d_hi), (w_lo, w_hi) = region[variables[0]], region[variables[1]]
    heads = int(d.get("model_context", {}).get("heads") or 1)
    step = int(np.lcm(8, heads))
    depths = range(max(1, int(np.ceil(d_lo))), int(np.floor(d_hi)) + 1)
    widths = {w for w in range(step, int(w_hi) + 1, step) if w >= w_lo}
    widths |= {int(w) for w in d["measured_range"][variables[1]]}
    # a variable with fewer than 3 measured values: the law cannot interpolate it, only its levels count
    if variables[0] in res.undetermined:
        depths = sorted({int(v) for v in d["measured_range"][variables[0]]})  # type: ignore[assignment]
    if variables[1] in res.undetermined:
        widths = {int(v) for v in d["measured_range"][variables[1]]}
    fixed = [float(np.mean(d["measured_range"][v])) for v in variables[2:]]
    return np.array([(L, h, *fixed) for L in depths for h in sorted(widths)], dtype=float)


def fit_trust_region(
    d: dict[str, Any], variables: list[str], trust: float | None = None
) -> tuple[float, dict[str, tuple[float, float]]]:
    """The trust factor (`trust`, else the fit's own) and the region it spans around the measured range."""
    trust = trust or float(d.get("trust", DEFAULT_TRUST))
    measured = {v: (float(d["measured_range"][v][0]), float(d["measured_range"][v][1])) for v in variables}
    return trust, trust_region(measured, trust, NATURAL)


def edge_prediction(res: FitResult, d: dict[str, Any], trust: float | None = None) -> dict[str, Any]:
    """The prediction, with its interval, where the trust region ends: every variable at `trust` x its
    largest measured value (how far a law that only predicts may be taken). A variable measured at one
    value only stays there: the law knows nothing of it elsewhere."""
    trust, _ = fit_trust_region(d, res.law.variables, trust)
    rng = d["measured_range"]
    constant = [v for v in res.law.variables if rng[v][0] == rng[v][1]]
    at = {v: float(rng[v][1]) * (1.0 if v in constant else trust) for v in res.law.variables}
    x = np.array([[at[v] for v in res.law.variables]])
    lo, hi = res.predict_interval(x)
    return {
        "at": at,
        "constant": constant,
        "trust": trust,
        "predicted": float(res.predict(x)[0]),
        "ci95": [float(lo[0]), float(hi[0])],
    }


def decide(
    res: FitResult, d: dict[str, Any], budget: Budget | None = None, trust: float | None = None
) -> Decision | None:
    """The law's decision (fitters.decisions) inside the trust region and the budget, with its
    bootstrap interval; None for a law that only predicts."""
    try:
        return _decide(res, d, budget, trust)
    except ValueError as e:  # a decision the data cannot support is the user's to know, not a crash
        raise UserError(str(e)) from None


def _decide(res: FitResult, d: dict[str, Any], budget: Budget | None, trust: float | None) -> Decision | None:
    budget = budget or Budget()
    _, region = fit_trust_region(d, res.law.variables, trust)
    measured = {v: tuple(d["measured_range"][v]) for v in res.law.variables}
    kind = res.law.DECISION
    if kind == "best_config":
        if budget.max_tokens is not None:
            raise UserError("--max-tokens: this law does not model training tokens (try --law chinchilla)")
        cand = _candidates(res, d, region)
        feasible = None
        if budget:
            ctx = d.get("model_context", {})
            sizes = [candidate_sizes(ctx, int(c[0]), int(c[1])) for c in cand]
            if any(s is None for s in sizes):
                raise UserError("the fit does not record the model family, so candidate sizes are unknown")
            tokens = float(ctx.get("train_tokens") or 0)
            if budget.max_flops is not None and not tokens:
                raise UserError("--max-flops: the fit does not record the runs' training tokens")
            feasible = np.ones(len(cand), bool)
            if budget.max_params is not None:
                feasible &= np.array([s[budget.params_kind] for s in sizes]) <= budget.max_params  # type: ignore[index]
            if budget.max_flops is not None:
                feasible &= np.array([s["flops_per_token"] * tokens for s in sizes]) <= budget.max_flops  # type: ignore[index]
            if not feasible.any():
                raise UserError(f"no candidate configuration fits the budget ({budget.describe()})")
        region2 = {v: region[v] for v in res.law.variables[:2]}
        return best_config(res, cand, region2, feasible=feasible, natural=NATURAL)
    if kind == "allocation":
        n_var, d_var = res.law.variables[:2]
        if budget.max_params is not None:
            if budget.params_kind != "non_embedding" and n_var == "params":
                raise UserError(
                    "--max-params: this law's N is non-embedding parameters; add --params-kind non_embedding"
                )
            region[n_var] = (region[n_var][0], min(region[n_var][1], budget.max_params))
        if budget.max_tokens is not None:
            region[d_var] = (region[d_var][0], min(region[d_var][1], budget.max_tokens))
        curve = np.array(d.get("cost_curve") or [])
        fpt = None
        if len(curve) >= 2:
            ln_n, ln_f = np.log(curve[:, 0]), np.log(curve[:, 1])
            slope, icpt = np.polyfit(ln_n, ln_f, 1)

            def fpt(n: np.ndarray) -> np.ndarray:  # measured per-token cost, log-log, linear beyond the ends
                inside = np.interp(np.log(n), ln_n, ln_f)
                outside = icpt + slope * np.log(n)
                return np.exp(np.where((n < curve[0, 0]) | (n > curve[-1, 0]), outside, inside))

        compute = budget.max_flops
        if compute is None:  # default: the largest measured training compute
            N, D = (np.array(measured[v]) for v in (n_var, d_var))
            compute = float(N[1] * D[1] * (6.0 if fpt is None else fpt(np.array([N[1]]))[0] / N[1]))
        return allocation(res, compute, region, flops_per_token=fpt)
    return None
