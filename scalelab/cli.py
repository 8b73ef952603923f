"""The `scalelab` command line. Thin: it parses, validates, and delegates to the library."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
import yaml
from rich.console import Console
from rich.table import Table
from typer.exceptions import Abort, Exit, TyperException

from scalelab import __version__
from scalelab.config import RunConfig, dump_config, load_config
from scalelab.errors import ConfigError, UserError

# Piped or redirected output is never cut to 80 columns (rich's default without a terminal): tables
# and paths keep their full width, for logs and for the next program in the pipe.
out = Console() if sys.stdout.isatty() else Console(width=100_000, soft_wrap=True)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=100_000, soft_wrap=True)

app = typer.Typer(
    name="scalelab",
    help="Scaling-law lab for generative recommendation models (HSTU, SASRec, Llama, GPT, FuXi-alpha).\n\n"
    "Typical flow: describe your data, run a sweep over depth/width/data, fit a law, report.\n\n"
    "  scalelab data describe ml-1m\n\n"
    "  scalelab config show --set model.depth=8",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
data_app = typer.Typer(help="Datasets: download, inspect, preprocess, generate.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect and validate configuration files.", no_args_is_help=True)
model_app = typer.Typer(help="Architectures: list them, size them.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(config_app, name="config")

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", help="Override a config field: --set model.depth=8 (repeatable; value is YAML)."
    ),
]
ConfigArg = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML run config to start from (default: built-in defaults)."),
]


def _version(value: bool) -> None:
    if value:
        out.print(f"scalelab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", "-V", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    """Scaling-law lab for generative recommendation models."""


# ------------------------------------------------------------------------------------------ config


@config_app.command("show")
def config_show(
    config: Annotated[
        Path | None, typer.Argument(help="YAML run config (default: built-in defaults).")
    ] = None,
    set_: SetOption = None,
) -> None:
    """Print the fully resolved run config (defaults + file + overrides) as YAML.

    Example: scalelab config show my.yaml --set model.depth=8 --set train.lr=3e-4
    """
    cfg = load_config(config, set_)
    out.print(yaml.safe_dump(dump_config(cfg), sort_keys=False), end="", markup=False, highlight=False)


@config_app.command("check")
def config_check(
    config: Annotated[Path, typer.Argument(help="YAML run config to validate.")],
    set_: SetOption = None,
) -> None:
    """Validate a run config; prints `ok` or a one-line error naming the field."""
    load_config(config, set_)
    out.print(f"{config}: ok")


# ------------------------------------------------------------------------------------------- train


@app.command("train")
def train(
    config: Annotated[
        Path | None, typer.Argument(help="YAML run config (default: built-in defaults).")
    ] = None,
    set_: SetOption = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", "-o", help="Checkpoints and summary (default results/runs/<name>)."),
    ] = None,
    track: Annotated[
        bool, typer.Option(help="Log to MLflow (tracking.mlflow_uri, default sqlite under results/).")
    ] = True,
) -> None:
    """Train one model; re-running with the same output directory resumes from its checkpoint.

    Examples:

      scalelab train configs/ml1m_hstu.yaml --set data.path=../shared/datasets/ml-1m/interactions.tsv.gz

      scalelab train --set model.family=llama --set model.depth=4 --set train.epochs=5
    """
    from scalelab.training.run import run_with_tracking

    cfg = load_config(config, set_)
    summary = run_with_tracking(cfg, output_dir, track=track, progress=True)
    _print_summary(summary)


def _print_summary(s: dict[str, Any]) -> None:
    final, best = s.get("final", {}), s.get("best_test", {})
    table = Table(
        "metric",
        "final (last epoch)",
        f"at best epoch ({s.get('best_epoch')})",
        title=f"{s['name']}: {s['status']} after {s.get('epochs_run')} epochs ({s.get('stop_reason')}), "
        f"test split, best by {s.get('selection')}",
        title_justify="left",
    )
    for k in final:
        table.add_row(k, f"{final[k]:.4f}", f"{best.get(k, float('nan')):.4f}")
    out.print(table)
    size = s["size"]
    out.print(
        f"params: {size['embedding_params']:,} embedding + {size['non_embedding_params']:,} non-embedding; "
        f"{s.get('mean_epoch_time_s') or 0:.1f} s/epoch on {s['device']}; summary: {s['output_dir']}/summary.json"
    )


# ------------------------------------------------------------------------------------------- sweep


@app.command("sweep")
def sweep(
    spec_file: Annotated[Path, typer.Argument(help="Sweep spec YAML (see sweeps/).")],
    set_: SetOption = None,
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT (default: a local Ray)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the trials and check resources; run nothing.")
    ] = False,
    track: Annotated[
        bool, typer.Option(help="Log to MLflow (driver only; default sqlite under results/).")
    ] = True,
    name: Annotated[
        str | None,
        typer.Option(
            help="Run the sweep under this name (results/<name>/, the MLflow parent run) instead of the spec's."
        ),
    ] = None,
    adaptive: Annotated[
        bool,
        typer.Option(
            "--adaptive",
            help="Run only the cells an adaptive design asks for (the spec's `adaptive:` section, or its "
            "defaults): a cheap start, then waves of the cells most likely to be the best depth x width "
            "under the Performance Law, until that decision is settled (results/<name>/adaptive.json).",
        ),
    ] = False,
    resume_from: Annotated[
        Path | None,
        typer.Option(
            help="A runs table (runs.csv / runs.parquet) kept from another machine or results directory: "
            "the cells it lists as finished with this sweep's exact settings are not run again, and their "
            "rows join this sweep's runs table (kept in results/<name>/carried.csv for later runs).",
        ),
    ] = None,
) -> None:
    """Run every cell of a sweep as a Ray Tune trial; re-running resumes (finished cells are skipped).

    On a terminal a live table shows every trial (state, epoch, loss, the monitored metric); piped,
    one line per trial event. The results table is printed at the end (`scalelab runs NAME` prints it
    again).

    Exit status: 0 every cell finished; 1 a cell failed or diverged (or tracking writes wait in the
    spool); 2 bad input (nothing ran); 3 interrupted with cells left to run; 130 aborted at start.

    Examples:

      scalelab sweep sweeps/quickstart.yaml

      scalelab sweep sweeps/hstu_depth.yaml --dry-run --set data.path=../shared/datasets/ml-1m/interactions.tsv.gz

      scalelab sweep sweeps/arch_compare.yaml --address auto

      scalelab sweep sweeps/laws_real_beauty.yaml --resume-from results/reference/laws_real/laws_real_beauty.csv
    """
    from scalelab.sweeps import runner
    from scalelab.sweeps.spec import load_sweep

    spec, cells = load_sweep(spec_file, set_, name=name)
    if adaptive and spec.adaptive is None:
        from scalelab.sweeps.spec import AdaptiveSpec, check_adaptive_grid

        spec = spec.model_copy(update={"adaptive": AdaptiveSpec()})
        try:
            check_adaptive_grid(spec)
        except ValueError as e:
            raise ConfigError(f"{spec_file}: --adaptive: {e}") from None
    if dry_run:
        cells = runner.absolute_data_paths(cells)
        with err.status("sizing cells ...", spinner="dots"):
            planned = runner.plan(spec, cells)
        _print_plan(spec, planned)
        nodes = runner.cluster_nodes(address or spec.address)
        fits = runner.preflight(planned, nodes, str(spec_file))
        for shape, n in fits.items():
            out.print(f"trials of {runner.describe_shape(shape)}: {n} at once on {len(nodes)} node(s)")
        available = runner.totals(nodes)
        out.print(
            f"preflight ok: every trial fits on {', '.join(f'{v:g} {k}' for k, v in available.items())}"
        )
        return
    outcome = _run_with_status(
        lambda status: runner.run_sweep(spec, cells, str(spec_file), address, track, status, resume_from),
        len(cells),
    )
    c = outcome.counts
    _print_results(outcome.table, spec.name)
    out.print(
        f"{spec.name}: {c.done} finished"
        + (f" ({c.continued} continued from their trial under earlier settings)" if c.continued else "")
        + ", "
        + (f"{c.stopped} stopped early on their learning curve, " if c.stopped else "")
        + f"{c.skipped} already done"
        + (f" ({c.carried} carried from another runs table)" if c.carried else "")
        + f", {c.diverged} diverged, {c.failed} failed "
        f"of {c.total}; runs table: {outcome.root / 'runs.csv'}",
        highlight=False,
    )
    if outcome.undelivered:
        err.print(
            f"[red]error:[/] the tracking store did not take {outcome.undelivered} writes ({outcome.tracking_error}); "
            f"they are kept in {outcome.spool}: re-run the same command to deliver them",
            markup=True,
            highlight=False,
            soft_wrap=True,
        )
    if outcome.exit_code:
        bad = outcome.table[outcome.table["status"].isin(["failed", "diverged", "oom"])]
        for _, row in bad.iterrows():
            err.print(
                f"  {row['name']} ({row['cell_id']}): {row['status']}: {row['failure_reason']}",
                highlight=False,
                soft_wrap=True,
            )
        left = outcome.unfinished
        if len(left):
            err.print(
                f"[red]error:[/] interrupted: {len(left)} of {c.total} cells not run to the end: "
                + ", ".join(f"{r['name']} ({r['cell_id']})" for _, r in left.iterrows())
                + "; re-run the same command to resume them",
                markup=True,
                highlight=False,
                soft_wrap=True,
            )
        raise typer.Exit(outcome.exit_code)


def _print_plan(spec: Any, planned: list[Any]) -> None:
    table = Table(
        "cell",
        "name",
        "family",
        "depth",
        "width",
        "fraction",
        "emb params",
        "non-emb params",
        "FLOPs/epoch",
        "mem (MB)",
        "resources",
        title=f"{spec.name}: {len(planned)} trials",
        title_justify="left",
    )
    for p in planned:
        r = p.row()
        res_txt = " ".join(f"{k}={v:g}" for k, v in p.resources.items() if v)
        table.add_row(
            r["cell"],
            r["name"],
            r["family"],
            str(r["depth"]),
            str(r["width"]),
            f"{r['fraction']:g}",
            f"{r['emb_params']:,}",
            f"{r['non_emb_params']:,}",
            f"{r['flops_per_epoch']:.3g}",
            f"{r['mem_mb']:.0f}",
            res_txt,
        )
    out.print(table)
    if spec.expected_cost:
        out.print("expected cost: " + ", ".join(f"{k}: {v}" for k, v in spec.expected_cost.items()))


def _run_with_status(fn: Any, total: int) -> Any:
    """Run `fn(status)`: a live per-trial table on a terminal, one line per trial event when piped."""
    import time as _time

    from scalelab.sweeps.progress import EventLines, live_view

    start = _time.time()
    if not err.is_terminal:
        lines = EventLines(lambda text: out.print(text, highlight=False))
        out.print(f"sweep of {total} cell(s); cells finished earlier are skipped", highlight=False)
        return fn(lines)
    from rich.live import Live
    from rich.text import Text

    with Live(
        Text(f"starting {total} trials ..."), console=err, refresh_per_second=2, transient=True
    ) as live:
        return fn(lambda counts: live.update(live_view(counts, start)))


def _print_results(table: Any, title: str) -> None:
    from scalelab.sweeps.progress import results_frame, results_renderable

    frame = results_frame(table)
    if out.is_terminal:
        out.print(results_renderable(frame, title))
    else:
        out.print(frame.to_string(index=False), highlight=False)


@app.command("runs")
def runs_cmd(
    sweep_name: Annotated[str, typer.Argument(help="Sweep name (results/<name>/) or its directory.")],
    csv: Annotated[bool, typer.Option("--csv", help="Print CSV (every column with --all).")] = False,
    all_columns: Annotated[bool, typer.Option("--all", help="Every column of the runs table.")] = False,
) -> None:
    """Print a sweep's runs table: one row per cell, test metrics at the best validation epoch.

    Examples:

      scalelab runs quickstart

      scalelab runs quickstart --csv --all > quickstart.csv
    """
    from scalelab.report import load_sweep_table
    from scalelab.sweeps.progress import results_frame

    table, root = load_sweep_table(sweep_name)
    frame = table if all_columns else results_frame(table)
    if csv:
        sys.stdout.write(frame.to_csv(index=False))
    elif all_columns:
        out.print(frame.to_string(index=False), highlight=False)
    else:
        _print_results(table, root.name)


# --------------------------------------------------------------------------------------------- fit


@app.command("fit")
def fit_cmd(
    law: Annotated[str, typer.Option(help="performance | power | chinchilla.")] = "performance",
    sweep_name: Annotated[
        str | None, typer.Option("--sweep", help="Sweep name (results/<name>/runs.*).")
    ] = None,
    runs: Annotated[str | None, typer.Option(help="Any results table (.csv or .parquet).")] = None,
    experiment: Annotated[
        str | None, typer.Option(help="Read the trial runs of an MLflow experiment.")
    ] = None,
    metric: Annotated[str, typer.Option(help="Metric to model, e.g. ndcg@10, hr@10, loss.")] = "ndcg@10",
    x: Annotated[
        list[str] | None,
        typer.Option(
            "--x",
            help="Variables (depth, width, params, tokens, train_tokens, apen, compute, or a column); "
            "default: the law's own.",
        ),
    ] = None,
    form: Annotated[
        str | None,
        typer.Option(
            help="Performance Law form: per_dataset or tied (D' from tokens and the data's entropy)."
        ),
    ] = None,
    direction: Annotated[
        str | None,
        typer.Option(
            help="Power / Chinchilla: rising (a metric), falling (a loss); default from the metric."
        ),
    ] = None,
    opt: Annotated[
        list[str] | None,
        typer.Option("--opt", help="Any option the law declares, KEY=VALUE (repeatable; value is YAML)."),
    ] = None,
    holdout: Annotated[
        str, typer.Option(help="largest:K holds out the K largest configurations; none.")
    ] = "largest:2",
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for the intervals.")] = 1000,
    interval: Annotated[
        str,
        typer.Option(
            help="Bootstrap: residual (keep the design, resample residuals) or case (resample cells); "
            "chosen by measured coverage, results/reference/fit.md."
        ),
    ] = "residual",
    trust: Annotated[
        float,
        typer.Option(help="Decisions stay within this factor beyond the measured range of each variable."),
    ] = 2.0,
    which: Annotated[
        str,
        typer.Option(
            help="best (test metric at the best validation epoch), final (last epoch), or auto: best when "
            "the runs chose their epoch on a validation split, else final (as `scalelab report`)."
        ),
    ] = "auto",
    track: Annotated[
        bool, typer.Option(help="Log the fit as an MLflow run under the sweep's parent run.")
    ] = True,
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow URI (default: the sweep's, or results/).")
    ] = None,
) -> None:
    """Fit a scaling law to a sweep's results, with bootstrap intervals, guards and a hold-out check.

    The output names the law's decision with its own 95% interval: the best depth and width (Performance
    Law), or N and D at the largest measured compute (Chinchilla), inside a trust region around the
    measured range; an optimum on the region's edge is reported as "no interior optimum".

    Examples:

      scalelab fit --law performance --sweep quickstart

      scalelab fit --law power --sweep hstu_depth --x params --metric hr@10

      scalelab fit --law performance --form tied --sweep data_scaling

      scalelab fit --law chinchilla --sweep data_scaling --metric ndcg@10
    """
    from fitters import LAWS
    from scalelab import fitting

    if law not in LAWS:
        raise UserError(f"--law: unknown law {law!r}; known: {', '.join(LAWS)}")
    if holdout != "none" and not holdout.startswith("largest:"):
        raise UserError(f"--holdout {holdout!r}: use largest:K or none")
    try:
        k = 0 if holdout == "none" else int(holdout.split(":", 1)[1])
    except ValueError:
        raise UserError(f"--holdout {holdout!r}: use largest:K or none") from None
    if bootstrap < 0:
        raise UserError("--bootstrap must be >= 0")
    if interval not in ("residual", "case"):
        raise UserError(f"--interval {interval!r}: use residual or case")
    if trust < 1:
        raise UserError(f"--trust {trust:g}: must be >= 1 (1 = the measured range only)")
    if which not in ("auto", "best", "final"):
        raise UserError(f"--which {which!r}: use auto, best or final")
    options = _law_options(opt, form=form, direction=direction)
    job = fitting.FitJob(
        law=law,
        metric=metric,
        x=x,
        options=options,
        holdout=k,
        bootstrap=bootstrap,
        which=which,
        method=interval,
        trust=trust,
    )
    fitting.build_law(job)  # the law checks its options before any table is read
    table, sweep_dir, source = fitting.load_runs(sweep_name, runs, experiment, tracking_uri)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(f"fitting the {law} law: bootstrap"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("bootstrap", total=bootstrap or 1)
        result, rows, _variables = fitting.run_fit(
            table, job, progress=lambda done, total: bar.update(task, completed=done), source=source
        )
    payload = fitting.fit_payload(result, job, source, rows)
    out_dir = (sweep_dir or Path("results")) / "fits"
    json_path, png_path = fitting.write_outputs(result, payload, rows, out_dir, job)
    if track:
        fitting.log_to_mlflow(payload, sweep_dir, [json_path, png_path], tracking_uri)
    _print_fit(payload)
    out.print(f"fit: {json_path}\nplot: {png_path}")


def _which_words(which: str) -> str:
    return {"best": "test, at the best validation epoch", "final": "test, at the last epoch"}.get(
        which, which
    )


def _law_options(opt: list[str] | None, **named: str | None) -> dict[str, Any]:
    """KEY=VALUE options (values read as YAML) plus the named flags (--form, --direction) that were given;
    the law itself checks them (fitting.build_law)."""
    options: dict[str, Any] = {}
    for kv in opt or []:
        if "=" not in kv:
            raise UserError(f"--opt {kv!r}: use KEY=VALUE")
        key, value = kv.split("=", 1)
        options[key.strip()] = yaml.safe_load(value)
    options.update({k: v for k, v in named.items() if v is not None})
    return options


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1e4 and float(v).is_integer() else f"{v:.4g}"


def _print_fit(d: dict[str, Any]) -> None:
    t = Table(
        "parameter",
        "value",
        "95% interval",
        title=f"{d['law']} law on {d['metric']} ({_which_words(d.get('which', 'final'))}; {d['n_points']} points; "
        f"{d.get('formula', '')})",
        title_justify="left",
    )
    for k, v in d["params"].items():
        if k in d["ci95"]:
            lo, hi = d["ci95"][k]
            t.add_row(k, f"{v:.5g}", f"[{lo:.4g}, {hi:.4g}]")
        elif not d.get("identifiable", {}).get(k, True):
            fitted = dict(zip(d["params"], d.get("free") or [], strict=False)).get(k, False)
            t.add_row(k, f"{v:.5g}", "not identifiable" + (" (fitted to 2 levels)" if fitted else " (fixed)"))
        else:
            t.add_row(k, f"{v:.5g}", "-")
    out.print(t)
    if d.get("note"):
        out.print(f"note: {d['note']}")
    line = f"in-sample R^2 {d['r2']:.4f}, RMSE {d['rmse']:.4g}"
    h = d.get("holdout", {})
    if "mean_rel_error" in h:
        line += (
            f"; held out {h['held_out']} largest: mean relative error {h['mean_rel_error']:.2%} "
            f"(max {h['max_rel_error']:.2%}); predicted best config {h['best_config_predicted']} vs measured "
            f"{h['best_config_measured']} ({'match' if h['best_config_match'] else 'no match'})"
        )
    elif "error" in h:
        line += f"; hold-out skipped: {h['error']}"
    out.print(line)
    dec = d.get("decision")
    if dec:
        _print_decision(dec, d["metric"])
    if d.get("extrapolation"):
        _print_extrapolation(d["extrapolation"], d["metric"])
    iso = d.get("isoflop")
    if iso:
        if "exponent" in iso:
            law_exp = f" (fitted law: {iso['law_exponent']:.3f})" if "law_exponent" in iso else ""
            out.print(
                f"IsoFLOP cross-check: N_opt ~ C^{iso['exponent']:.3f} over {len(iso['levels'])} levels{law_exp}"
            )
        else:
            out.print(f"IsoFLOP cross-check: {iso['note']}")
    for w in d.get("warnings", []):
        err.print(f"[yellow]warning:[/] {w}", highlight=False)


def _print_extrapolation(e: dict[str, Any], metric: str) -> None:
    constant = e.get("constant", [])
    moved = ", ".join(f"{k} {_fmt(v)}" for k, v in e["at"].items() if k not in constant)
    kept = "".join(f"; {k} {_fmt(e['at'][k])}, its one measured value" for k in constant)
    lo, hi = e["ci95"]
    out.print(
        f"at the trust region's edge ({moved}, {e['trust']:g}x the largest measured{kept}): predicted {metric} "
        f"{e['predicted']:.4f} [{lo:.4f}, {hi:.4f}]",
        highlight=False,
    )


def _print_decision(dec: dict[str, Any], metric: str) -> None:
    from scalelab import fitting

    region = ", ".join(f"{v} {_fmt(lo)}-{_fmt(hi)}" for v, (lo, hi) in dec["region"].items())
    if dec["status"] == "edge":
        out.print(f"[bold]decision:[/] {dec['message']} (trust region: {region})", highlight=False)
        return
    shown = fitting.decision_values(dec, _fmt)
    lo, hi = dec["predicted_ci95"]
    out.print(
        f"[bold]decision:[/] {shown} (95% intervals); predicted {metric} {dec['predicted']:.4f} "
        f"[{lo:.4f}, {hi:.4f}]; {dec['message']} (trust region: {region})",
        highlight=False,
    )


@app.command("predict")
def predict_cmd(
    fit_file: Annotated[Path, typer.Option("--fit", help="A fit JSON written by `scalelab fit`.")],
    law: Annotated[
        str | None, typer.Option(help="Expected law of the fit (checked against the file).")
    ] = None,
    at: Annotated[
        list[str] | None, typer.Option(help="A configuration, e.g. depth=8,width=64 (repeatable).")
    ] = None,
    max_params: Annotated[
        float | None, typer.Option(help="Budget on parameters (see --params-kind) for the best config.")
    ] = None,
    params_kind: Annotated[
        str,
        typer.Option(
            help="total (default: what a deployed model costs, item table included, as Pearce & Song "
            "2024 count) or non_embedding parameters."
        ),
    ] = "total",
    max_flops: Annotated[
        float | None,
        typer.Option(help="Budget on the training FLOPs of a run (item-scoring layer included), e.g. 1e15."),
    ] = None,
    max_tokens: Annotated[
        float | None, typer.Option(help="Budget on training tokens (targets seen in training).")
    ] = None,
    trust: Annotated[
        float | None,
        typer.Option(
            help="Trust region: at most this factor beyond the measured range (default: the fit's, 2)."
        ),
    ] = None,
) -> None:
    """Predictions (with 95% bootstrap intervals) and the best configuration from a saved fit.

    The best configuration carries the 95% interval of the decision itself (from the bootstrap fits),
    is searched only inside the trust region, and is reported as "no interior optimum" when it lies on
    the region's edge. With the Chinchilla law, --max-flops gives the compute-optimal N and D.

    Examples:

      scalelab predict --fit results/quickstart/fits/performance-ndcg_at_10.json --at depth=8,width=64

      scalelab predict --fit results/quickstart/fits/performance-ndcg_at_10.json --max-params 50000

      scalelab predict --fit results/data_scaling/fits/chinchilla-ndcg_at_10.json --max-flops 1e16
    """
    from scalelab import fitting

    if params_kind not in ("total", "non_embedding"):
        raise UserError(f"--params-kind {params_kind!r}: use total or non_embedding")
    for name, v in (("--max-params", max_params), ("--max-flops", max_flops), ("--max-tokens", max_tokens)):
        if v is not None and not v > 0:
            raise UserError(f"{name} must be positive")
    if trust is not None and trust < 1:
        raise UserError(f"--trust {trust:g}: must be >= 1")
    res, d = fitting.load_fit(fit_file)
    if law is not None and law != d["law"]:
        raise UserError(f"{fit_file}: holds a {d['law']} fit, not {law}")
    variables = res.law.variables
    t = Table(
        *variables,
        "predicted",
        "95% interval",
        "",
        title=f"{d['law']} law, {d['metric']}",
        title_justify="left",
    )
    for spec_txt in at or []:
        try:
            values = dict(kv.split("=", 1) for kv in spec_txt.split(","))
            xrow = np.array([[float(values[v]) for v in variables]])
        except (KeyError, ValueError):
            raise UserError(
                f"--at {spec_txt!r}: give every variable, e.g. {','.join(f'{v}=...' for v in variables)}"
            ) from None
        lo, hi = res.predict_interval(xrow)
        raw = float(res.law.predict(xrow, res.theta)[0])
        flags = []
        if res.law.y_range and not (res.law.y_range[0] <= raw <= res.law.y_range[1]):
            flags.append(f"clipped (the law gives {raw:.3g})")
        outside = [
            v for j, v in enumerate(variables)
            if not (d["measured_range"][v][0] <= xrow[0, j] <= d["measured_range"][v][1])
        ]  # fmt: skip
        if outside:
            factor, region = fitting.fit_trust_region(d, variables, trust)
            beyond = [v for j, v in enumerate(variables) if not region[v][0] <= xrow[0, j] <= region[v][1]]
            flags.append(
                "extrapolated in " + ", ".join(outside)
                + (f"; beyond the trust region ({factor:g}x) in {', '.join(beyond)}: not a prediction to act on"
                   if beyond else "")
            )  # fmt: skip
        if res.law.y_range and (lo[0] <= res.law.y_range[0] or hi[0] >= res.law.y_range[1]):
            flags.append(
                f"interval cut at the metric's range [{res.law.y_range[0]:g}, {res.law.y_range[1]:g}]"
            )
        t.add_row(
            *[f"{v:g}" for v in xrow[0]],
            f"{res.predict(xrow)[0]:.4f}",
            f"[{lo[0]:.4f}, {hi[0]:.4f}]",
            "; ".join(flags),
        )
    if at:
        out.print(t)
    budget = fitting.Budget(max_params, params_kind, max_flops, max_tokens)
    decision = fitting.decide(res, d, budget, trust)
    if decision is None:
        if budget:
            raise UserError(f"the {d['law']} law takes no decisions under a budget; use --at to predict")
        _print_extrapolation(fitting.edge_prediction(res, d, trust), d["metric"])
        return
    if budget:
        out.print(f"budget: {budget.describe()}")
    dd = decision.to_dict()
    if dd["status"] != "edge" and dd["kind"] == "best_config":
        sizes = fitting.candidate_sizes(
            d.get("model_context", {}), int(dd["values"][variables[0]]), int(dd["values"][variables[1]])
        )
        if sizes:
            dd["message"] += (
                f" ({sizes['total']:,.0f} parameters, {sizes['non_embedding']:,.0f} non-embedding)"
            )
    _print_decision(dd, d["metric"])


# ---------------------------------------------------------------------------------------- report


@app.command("report")
def report_cmd(
    sweep_name: Annotated[str, typer.Argument(help="Sweep name (results/<name>/) or its directory.")],
    compare: Annotated[
        list[str] | None, typer.Option(help="Other sweeps to compare at equal sizes (repeatable).")
    ] = None,
    track: Annotated[
        bool, typer.Option(help="Also log the report as artifacts of the sweep's parent MLflow run.")
    ] = True,
) -> None:
    """Write results/<sweep>/report/: HTML and Markdown with the paper-style table, scaling plots,
    learning curves and the fitted laws (run `scalelab fit` first to include them).

    Example: scalelab report quickstart --compare hstu_depth
    """
    from scalelab.report import write_report

    out_dir = write_report(sweep_name, compare)
    if track:
        _log_report(out_dir)
    for line in recommendations(out_dir.parent / "fits"):
        out.print(line, highlight=False)
    out.print(f"report: {out_dir / 'report.html'} (and report.md)", highlight=False)


def recommendations(fits: Path) -> list[str]:
    """One line per saved fit that makes a decision: the recommended configuration and its interval."""
    from scalelab import fitting

    lines = []
    for fj in sorted(fits.glob("*.json")) if fits.exists() else []:
        d = json.loads(fj.read_text())
        dec = d.get("decision")
        if not dec:
            continue
        values = fitting.decision_values(dec, _fmt)
        verdict = {"edge": "no interior optimum; best candidate on the trust region's edge"}.get(
            dec["status"], dec["status"]
        )
        lines.append(
            f"recommended by the {d['law']} law on {d['metric']} ({verdict}): {values} (95% interval)"
        )
    return lines


def _log_report(out_dir: Path) -> None:
    sweep_state = out_dir.parent / "sweep.json"
    if not sweep_state.exists():
        return
    from scalelab.tracking.mlflow_run import open_client

    state = json.loads(sweep_state.read_text())
    client = open_client(state["tracking_uri"])
    for f in sorted(out_dir.iterdir()):
        client.log_artifact(state["parent_run_id"], str(f), artifact_path="report")


@app.command("ui")
def ui_cmd(
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 5000,
    host: Annotated[str, typer.Option(help="Interface to bind (127.0.0.1 keeps it local).")] = "127.0.0.1",
    tracking_uri: Annotated[
        str | None, typer.Option(help="MLflow store (default: sqlite under results/).")
    ] = None,
) -> None:
    """Serve the MLflow dashboard on the project's tracking store: sweeps are parent runs with their
    trials as children; filter with tags.sweep = 'NAME'."""
    import subprocess

    from scalelab.tracking.mlflow_run import default_tracking_uri

    uri = tracking_uri or default_tracking_uri()
    out.print(
        f"MLflow UI on http://{host}:{port}/#/experiments?workflowType=machine_learning (store {uri}); "
        "Ctrl-C stops it",
        highlight=False,
    )
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        host,
        "--port",
        str(port),
    ]
    try:
        raise typer.Exit(subprocess.call(cmd))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


# ------------------------------------------------------------------------------------------- model


@model_app.command("list")
def model_list() -> None:
    """List the registered architectures and their switches."""
    from scalelab.models.registry import FAMILIES

    table = Table("family", "description", "switches (default)", "tasks")
    for name, fam in FAMILIES.items():
        switches = ", ".join(f"{k}={v}" for k, v in fam.defaults.items())
        table.add_row(name, fam.description, switches, ", ".join(fam.tasks))
    out.print(table)


@model_app.command("size")
def model_size(
    config: ConfigArg = None,
    set_: SetOption = None,
    num_items: Annotated[int, typer.Option(help="Catalogue size (ML-1M: 3416).")] = 3416,
    family: Annotated[
        list[str] | None,
        typer.Option("--family", "-f", help="Families to size (repeatable; default: the config's)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Exact parameter counts and analytic training FLOPs per token, without building the model.

    Example: scalelab model size --set model.width=64 --set model.depth=8 -f hstu -f llama
    """
    from scalelab.models.accounting import run_size, scored_negatives
    from scalelab.models.registry import FAMILIES, resolve

    cfg = load_config(config, set_)
    rows = []
    for fam in family or [cfg.model.family]:
        ranking = not FAMILIES[fam].is_encoder if fam in FAMILIES else False
        extra = ["task.kind=ranking"] if ranking else []
        fcfg = load_config(config, [*(set_ or []), f"model.family={fam}", *extra])
        spec = resolve(fcfg.model, cfg.padded_len())
        size = run_size(fcfg, spec, num_items)
        rows.append({"family": fam, "padded_len": spec.max_len, **size.as_dict()})
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(
        "family",
        "N",
        "embedding",
        "non-embedding",
        "total",
        "train FLOPs/token",
        title=f"width {cfg.model.width}, depth {cfg.model.depth}, heads {cfg.model.heads}, "
        f"{num_items:,} items, {scored_negatives(cfg, num_items)} negatives",
    )
    for r in rows:
        table.add_row(
            str(r["family"]),
            str(r["padded_len"]),
            f"{r['embedding_params']:,}",
            f"{r['non_embedding_params']:,}",
            f"{r['total_params']:,}",
            f"{r['flops_per_token']:,.0f}",
        )
    out.print(table)


# -------------------------------------------------------------------------------------------- data


@data_app.command("list")
def data_list() -> None:
    """List the public datasets `scalelab data download` knows, and which are installed."""
    from scalelab.data import download

    table = Table("name", "format", "installed", "description", title=f"data root: {download.data_root()}")
    for name, d in download.DATASETS.items():
        here = download.installed_path(name).exists()
        table.add_row(name, d.format, "yes" if here else "", d.description)
    out.print(table)


@data_app.command("download")
def data_download(
    name: Annotated[
        str, typer.Argument(help="Dataset name, e.g. ml-1m, ml-20m, amazon-beauty (see `data list`).")
    ],
    from_file: Annotated[
        Path | None, typer.Option("--from", help="Install from a local copy of the official file (offline).")
    ] = None,
    root: Annotated[
        Path | None, typer.Option(help="Data root (default $SCALELAB_DATA or ~/.cache/scalelab/data).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Download again even if installed.")] = False,
) -> None:
    """Download a public dataset from its official URL, verify its checksum, and unpack it.

    Offline? Fetch the file on another machine and run: scalelab data download ml-1m --from ml-1m.zip
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from scalelab.data import download

    d = download.get_dataset(name)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(f"{name}", total=None)
        path = download.download(
            name,
            root,
            local_file=from_file,
            force=force,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    out.print(f"{d.name}: {path}")


@data_app.command("describe")
def data_describe(
    source: Annotated[
        str, typer.Argument(help="Interaction file, a dataset name (ml-1m, ...), or 'synthetic'.")
    ],
    config: ConfigArg = None,
    set_: SetOption = None,
    m: Annotated[list[int] | None, typer.Option("--m", help="ApEn embedding dimension (repeatable).")] = None,
    last: Annotated[int, typer.Option(help="ApEn on each user's last N items (0 = whole sequences).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Users, items, interactions, density, sequence lengths, time span, tokens, entropy, repeats.

    Entropy: the bias-corrected conditional entropy of the next item given the previous m (Chao-Shen,
    pooled over users) for m = 0..2, with its coverage, and the largest m the data covers; the Pincus
    ApEn beside it for comparison with the Performance-Law paper. Repeats: events that re-consume an
    item, and held-out targets already in the history (what eval.filter_history turns into misses).

    The file goes through the configured preprocessing (k-core, dedup, ...) first; the table shows
    what each step kept. Examples:

      scalelab data describe ../shared/datasets/ml-1m/interactions.tsv.gz

      scalelab data describe ratings.dat --set data.min_user_count=5 --m 1 --m 2
    """
    from scalelab.data.stats import describe

    overrides = list(set_ or [])
    if source != "synthetic":
        overrides.append(f"data.path={json.dumps(source)}")
    cfg = load_config(config, overrides)
    data = _load_data(cfg)
    stats = describe(data, cfg.data.split, cfg.data.max_seq_len, tuple(m or [2]), last or None)
    stats["steps"] = data.meta.get("steps", [])
    if as_json:
        out.print_json(json.dumps(stats))
        return
    _print_stats(stats, data.meta.get("source", source))


@data_app.command("prepare")
def data_prepare(config: ConfigArg = None, set_: SetOption = None) -> None:
    """Preprocess a dataset into the cache (what every trial of a sweep then reuses)."""
    cfg = load_config(config, set_)
    data = _load_data(cfg)
    cache = data.meta.get("cache", {})
    out.print(
        f"{data.num_users:,} users, {data.num_items:,} items, {data.num_interactions:,} interactions -> "
        f"{cache.get('path')} ({'cached' if cache.get('hit') else 'built'})"
    )
    if data.meta.get("steps"):
        out.print(_steps_table(data.meta["steps"]))


@data_app.command("synth")
def data_synth(
    output: Annotated[Path, typer.Argument(help="Output table (.tsv, .tsv.gz, .csv or .parquet).")],
    config: ConfigArg = None,
    set_: SetOption = None,
) -> None:
    """Write a synthetic interaction table (settings under data.synthetic).

    Example: scalelab data synth syn.tsv.gz --set data.synthetic.randomness=0.1
    """
    from scalelab.data.synthetic import generate_interactions

    cfg = load_config(config, set_)
    df = generate_interactions(cfg.data.synthetic).drop(columns="line")
    name = output.name.lower()
    output.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".parquet"):
        df.to_parquet(output, index=False)
    elif name.endswith((".tsv", ".tsv.gz", ".csv", ".csv.gz")):
        df.rename(columns={"user": "user_id", "item": "item_id"}).to_csv(
            output, sep="," if ".csv" in name else "\t", index=False
        )
    else:
        raise UserError(f"{output}: unsupported extension (use .tsv, .tsv.gz, .csv, .csv.gz or .parquet)")
    out.print(f"{output}: {len(df):,} interactions, {df['user'].nunique():,} users")


def _load_data(cfg: RunConfig) -> Any:
    from scalelab.data.loader import load_dataset

    where = cfg.data.path or "synthetic data"
    with err.status(f"loading {where} ...", spinner="dots"):
        data = load_dataset(cfg.data)
    if "cache_error" in data.meta:
        err.print(f"[yellow]warning:[/] could not write the dataset cache: {data.meta['cache_error']}")
    return data


def _print_stats(s: dict[str, Any], source: str) -> None:
    t = Table(title=str(source), show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("users", f"{s['users']:,}")
    t.add_row("items", f"{s['items']:,}")
    t.add_row("interactions", f"{s['interactions']:,}")
    t.add_row("density", f"{s['density']:.5f}")
    q = s["seq_len"]
    t.add_row(
        "sequence length",
        f"min {q['min']}  p25 {q['p25']:g}  median {q['median']:g}  mean {q['mean']:.1f}  "
        f"p95 {q['p95']:g}  max {q['max']}",
    )
    t.add_row(
        "time span",
        f"{s['time']['first_utc']} .. {s['time']['last_utc']} ({s['time']['span_days']:.0f} days)",
    )
    tk = s["tokens"]
    t.add_row(
        "training tokens",
        f"{tk['train_interactions']:,} interactions, {tk['train_targets']:,} targets "
        f"({tk['split']}, max_seq_len {tk['max_seq_len']})",
    )
    for a in s["apen"]:
        scope = f"last {a['last']}" if a["last"] else "full sequences"
        t.add_row(
            f"ApEn m={a['m']}",
            f"per-user mean {a['per_user_mean']:.4f} ({a['users']:,} users)  "
            f"pooled {a['pooled']:.4f}  [{scope}]",
        )
    ent = s["entropy"]
    scope = f"last {ent['last']}" if ent["last"] else "full sequences"
    t.add_row(
        "entropy H(next | m)",
        f"{ent['value']:.4f} nats at m={ent['chosen_m']} (the largest m the data covers; Chao-Shen, pooled) [{scope}]",
    )
    for e in ent["by_m"]:
        flag = "" if e["reliable"] else "  [yellow]undersampled[/]"
        t.add_row(
            f"  m={e['m']}",
            f"{e['value']:.4f} (plug-in {e['plug_in']:.4f})  coverage {e['coverage']:.2f}  "
            f"{e['contexts']:,} contexts, {e['singleton_contexts']:.0%} seen once{flag}",
        )
    r = s["repeats"]
    t.add_row(
        "repeat events", f"{r['events']:,} ({r['events_share']:.2%}) repeat an item the user had already"
    )
    for name in ("valid", "test"):
        if name in r:
            x = r[name]
            t.add_row(
                f"{name} targets seen",
                f"{x['in_history']:,} of {x['targets']:,} ({x['in_history_share']:.2%}) already in the history, "
                f"{x['in_input_window']:,} ({x['in_input_window_share']:.2%}) in the input window",
            )
    out.print(t)
    for e in ent["by_m"]:
        if e["warning"] and e["m"] <= ent["chosen_m"] + 1:
            err.print(f"[yellow]warning:[/] entropy {e['warning']}", highlight=False, soft_wrap=True)
    test = r["test"]
    if test["in_input_window"]:
        err.print(
            f"[yellow]note:[/] {test['in_input_window']:,} test targets ({test['in_input_window_share']:.2%}) are "
            "items already in the model's input window: with eval.filter_history: true (the default) they are "
            "masked, so each counts as a miss; set eval.filter_history: false to rank them",
            highlight=False,
            soft_wrap=True,
        )
    if s.get("steps"):
        out.print(_steps_table(s["steps"]))


def _steps_table(steps: list[dict[str, Any]]) -> Table:
    """What each preprocessing step kept and dropped."""
    st = Table(
        "step", "interactions", "dropped", "users", "items", title="preprocessing", title_justify="left"
    )
    prev = None
    for row in steps:
        dropped = "" if prev is None else f"{prev - row['interactions']:,}"
        st.add_row(row["step"], f"{row['interactions']:,}", dropped, f"{row['users']:,}", f"{row['items']:,}")
        prev = row["interactions"]
    return st


# -------------------------------------------------------------------------------------------- main


def _reflow(doc: str) -> str:
    """A docstring's paragraphs as single lines, so `--help` wraps them to the terminal (Typer keeps the
    source's line breaks, which leave ragged lines at 80 columns); indented paragraphs (examples) stay."""
    import inspect

    paras = inspect.cleandoc(doc).split("\n\n")
    return "\n\n".join(
        p if any(line.startswith((" ", "\t")) for line in p.splitlines()) else " ".join(p.split())
        for p in paras
    )


for _app in (app, data_app, model_app, config_app):
    for _cmd in _app.registered_commands:
        if _cmd.callback is not None and _cmd.callback.__doc__:
            _cmd.callback.__doc__ = _reflow(_cmd.callback.__doc__)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit, never a traceback."""
    import logging

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow's INFO lines drown the progress output
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        rv = app(args=argv, standalone_mode=False)
    except UserError as e:
        err.print(f"[red]error:[/] {e}", markup=True, highlight=False, soft_wrap=True)
        sys.exit(e.exit_code)
    except Abort:
        err.print("aborted")
        sys.exit(130)
    except Exit as e:
        sys.exit(e.exit_code)
    except TyperException as e:  # usage errors: typer prints them (help for an empty command)
        show = getattr(e, "show", None)  # typer's ClickException and UsageError have it
        if show is not None:
            show()
        else:
            err.print(f"error: {e.format_message()}", markup=False, highlight=False)
        sys.exit(getattr(e, "exit_code", 2))
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as e:  # a bug, not a user error: say so on one line unless debugging
        import errno

        if os.environ.get("SCALELAB_DEBUG"):
            raise
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            err.print(
                f"[red]error:[/] cannot write {e.filename or ''}: {e.strerror}",
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(2)
        err.print(
            f"[red]internal error:[/] {e.__class__.__name__}: {e} (set SCALELAB_DEBUG=1 for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
