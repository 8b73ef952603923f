"""Real held-out validation of the laws: fit on all but the largest cells, predict the largest.

For every real sweep (sweeps/laws_real_*.yaml: HSTU depth x width on ML-100K, ML-1M, Amazon Beauty and Video
Games, trained with early stopping on the validation item; the test metric at the best validation
epoch), the Performance Law (depth, width) and a plain power law in non-embedding parameters are
fitted to the cells below the `--holdout` largest sizes; for each held-out cell we report the
relative error of the prediction and whether the measured value lies in the 95% interval, and
whether the measured best cell lies inside the interval of the law's recommended configuration.
The data-fraction sweep (laws_real_ml1m_data) gets the same check with the largest fraction held out:
the tied Performance Law (depth, width, training data, entropy), Chinchilla in non-embedding
parameters and training data (targets per epoch), and a plain power law in one epoch's FLOPs.
Once three size sweeps are complete, the tied Performance Law is fitted across their datasets at once
(shared depth and width terms, each dataset's level from its training data and entropy), with and
without its data-quality term, on the same held-out cells.

    .venv/bin/python bench/laws_real.py                  # writes results/reference/laws-real.md (+ .json)
                                                         # and keeps the runs tables in results/reference/laws_real/
    .venv/bin/python bench/laws_real.py --sweeps laws_real_beauty --bootstrap 200
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fitters.curves import predict_final
from fitters.table import read_table, unconverged, variable_column, with_derived, with_entropy
from scalelab.fitting import FitJob, fit_payload, run_fit
from scalelab.sweeps.results import overlay

ROOT = Path(__file__).resolve().parents[1]
SIZE_SWEEPS = ("laws_real_ml100k", "laws_real_ml1m", "laws_real_beauty", "laws_real_games")
DATA_SWEEP = "laws_real_ml1m_data"
METRIC = "ndcg@10"
WHICH = "best"  # test metric at the epoch of the best validation metric (early stopping)


ARCHIVE = ROOT / "results" / "reference" / "laws_real"  # runs tables kept with the record (results/ is not)


def load(name: str) -> pd.DataFrame | None:
    """The sweep's runs table: its live rows, with the archived copy's row (results/reference/laws_real/)
    for every cell the live table has not finished (a fresh machine, or a sweep re-run elsewhere)."""
    live = next(
        (
            read_table(p)
            for p in (ROOT / "results" / name / f"runs.{e}" for e in ("parquet", "csv"))
            if p.exists()
        ),
        None,
    )
    kept = ARCHIVE / f"{name}.csv"
    old = read_table(kept) if kept.exists() else None
    if live is None or old is None:
        return live if live is not None else old
    live["cell_id"], old["cell_id"] = live["cell_id"].astype(str), old["cell_id"].astype(str)
    unfinished = set(live["cell_id"][live["status"] != "finished"])
    return overlay(live, old[old["status"] == "finished"], unfinished)


def archive(name: str) -> None:
    """Keep the runs table (live rows merged with the archive, see `load`) beside the record, so the
    record regenerates in a fresh checkout and a sweep resumes there with `--resume-from`."""
    if (ROOT / "results" / name).is_dir() and (table := load(name)) is not None:
        ARCHIVE.mkdir(parents=True, exist_ok=True)
        table.to_csv(ARCHIVE / f"{name}.csv", index=False)


def curves(name: str, cells: pd.DataFrame) -> dict[str, dict[str, list[float]]]:
    """Per-evaluation validation and test curves of `cells` (by name), read from the trials' summaries
    and kept beside the record (results/reference/laws_real/<sweep>-curves.json) so a fresh checkout
    regenerates the same numbers; the archive answers for cells whose trial directory is gone."""
    path = ARCHIVE / f"{name}-curves.json"
    kept: dict[str, dict[str, list[float]]] = json.loads(path.read_text()) if path.exists() else {}
    for _, row in cells.iterrows():
        summary = ROOT / "results" / name / "trials" / str(row["cell_id"]) / "summary.json"
        if not summary.exists():
            continue
        evals = [h for h in json.loads(summary.read_text())["history"] if f"valid_{METRIC}" in h]
        kept[str(row["name"])] = {
            "epoch": [float(h["epoch"]) for h in evals],
            "valid": [float(h[f"valid_{METRIC}"]) for h in evals],
            "test": [float(h[f"test_{METRIC}"]) for h in evals],
        }
    if kept:
        ARCHIVE.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(kept, indent=1, sort_keys=True))
    return {str(n): kept[str(n)] for n in cells["name"] if str(n) in kept}


def extrapolate(name: str, done: pd.DataFrame, boot: int, factor: float = 2.0) -> list[dict[str, Any]]:
    """How far each cell stopped by the epoch limit (best epoch = last) was from converged: its test
    curve extrapolated to `factor` x the epochs it ran (the saturating power law in epochs of
    fitters.curves, with its bootstrap interval), against the value the fit uses. Only the second half
    of the run is fitted: small HSTUs sit on a plateau for their first epochs before they learn, a
    sigmoid start the saturating law cannot follow (fitted from epoch 2, ML-1M's L4-D16 extrapolates
    to +28% where its last 14 epochs moved by 2%)."""
    late = done[unconverged(done)]
    out = []
    for cell, c in curves(name, late).items():
        row = late[late["name"] == cell].iloc[0]
        last = float(row["epochs_run"])
        e, y = np.array(c["epoch"]), np.array(c["test"])
        pred = predict_final(e[e > last / 2], y[e > last / 2], factor * last, bootstrap=boot)
        if pred is None:
            continue
        used = float(row[f"{WHICH}_{METRIC}"])
        out.append(
            {
                "name": cell,
                "epochs": int(last),
                "at_epoch": int(factor * last),
                "used": used,
                "predicted": pred.value,
                "ci95": list(pred.ci95),
                "gain": pred.value / used - 1,
            }
        )
    return out


def check(
    table: pd.DataFrame,
    law: str,
    x: list[str] | None,
    held: pd.Series,
    boot: int,
    options: dict | None = None,
) -> dict[str, Any]:
    """Fit `law` on the rows not in `held`, predict the held rows, and the decision vs the measured best."""
    # derived variables (training tokens, the entropy at one context length for every row) from the
    # whole table, so the fitted and the held-out rows read them alike; its note joins the fit's warnings
    with warnings.catch_warnings(record=True) as notes:
        warnings.simplefilter("always")
        table = with_entropy(with_derived(table))
    train = table[~held]
    job = FitJob(law=law, metric=METRIC, x=x, options=options or {}, holdout=0, bootstrap=boot, which=WHICH)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res, rows, variables = run_fit(train, job)
        payload = fit_payload(res, job, "laws_real", rows)
    cols = [variable_column(table, v) for v in variables]
    test = table[held]
    X = test[cols].to_numpy(dtype=float)
    y = test[f"{WHICH}_{METRIC}"].to_numpy(dtype=float)
    pred = res.predict(X)
    lo, hi = res.predict_interval(X)
    cells = [
        {
            "name": str(r["name"]),
            "non_embedding_params": int(r["non_embedding_params"]),
            "measured": float(y[i]),
            "predicted": float(pred[i]),
            "ci95": [float(lo[i]), float(hi[i])],
            "rel_error": float((pred[i] - y[i]) / y[i]),
            "inside": bool(lo[i] <= y[i] <= hi[i]),
        }
        for i, (_, r) in enumerate(test.iterrows())
    ]
    out: dict[str, Any] = {
        "law": law,
        "variables": variables,
        "fitted_on": len(rows),
        "r2": res.r2,
        "params": res.params,
        "ci95": {k: list(v) for k, v in res.ci.items()},
        "warnings": [str(n.message) for n in notes if "entropy" in variables] + payload["warnings"],
        "held_out": cells,
        "mean_abs_rel_error": float(np.mean([abs(c["rel_error"]) for c in cells])),
    }
    # the decision of the law fitted on the small cells vs the best cell measured over all of them
    full = table[table["status"] == "finished"]
    best = full.loc[full[f"{WHICH}_{METRIC}"].idxmax()]
    measured_best = {v: float(best[c]) for v, c in zip(variables, cols, strict=True)}
    out["measured_best"] = {
        "name": str(best["name"]),
        **measured_best,
        "value": float(best[f"{WHICH}_{METRIC}"]),
    }
    dec = payload.get("decision")
    if dec is None and res.law.DECISION == "predict":
        # a monotone law in one variable recommends its largest measured value: is that the measured best?
        biggest = full.loc[full[cols[0]].idxmax()]
        out["decision"] = {"status": "monotone", "values": {variables[0]: float(biggest[cols[0]])}}
        out["measured_best_inside"] = bool(biggest["name"] == best["name"])
    elif dec is not None:
        out["decision"] = dec
        out["measured_best_inside"] = dec["status"] != "edge" and all(
            dec["ci95"][v][0] <= measured_best[v] <= dec["ci95"][v][1] for v in dec["ci95"]
        )
    return out


def noise(cells: pd.DataFrame) -> dict[str, Any]:
    """The binomial standard error of HR@10 over the cells' test users (their median count and HR@10)."""
    users, hr = float(cells["data_users"].median()), float(cells[f"{WHICH}_hr@10"].median())
    return {"users": int(users), "hr": hr, "se_hr": float(np.sqrt(hr * (1 - hr) / users))}


def size_sweep(name: str, k: int, boot: int, min_cells: int = 12) -> dict[str, Any]:
    t = load(name)
    if t is None:
        return {"sweep": name, "status": "not run"}
    done = t[t["status"] == "finished"].copy()
    report: dict[str, Any] = {"sweep": name, "cells": len(t), "finished": len(done)}
    if done.empty:  # started, nothing finished yet: the table has no metric columns
        report["status"] = f"in progress: 0 of {len(t)} cells finished"
        return report
    report["unconverged"] = done.loc[unconverged(done), "name"].astype(str).tolist()
    report["extrapolated"] = extrapolate(name, done, min(boot, 200))
    report["table"] = done[["name", "depth", "width", "non_embedding_params", "epochs_run", "best_epoch",
                            f"{WHICH}_hr@10", f"{WHICH}_{METRIC}", "wall_time_s"]].sort_values("non_embedding_params").to_dict("records")  # fmt: skip
    if "data_users" in done and len(done):
        report["noise"] = noise(done)
    if len(done) < min_cells:
        report["status"] = f"only {len(done)} of {len(t)} cells finished: not fitted yet"
        return report
    sizes = np.sort(done["non_embedding_params"].unique())
    held = done["non_embedding_params"] >= sizes[-k]
    report["checks"] = [
        check(done, "performance", None, held, boot),
        check(done, "power", ["params"], held, boot),
    ]
    if report["extrapolated"]:  # sensitivity: would converged values of those cells change the verdict?
        adjusted = done.copy()
        for e in report["extrapolated"]:
            adjusted.loc[adjusted["name"] == e["name"], f"{WHICH}_{METRIC}"] = e["predicted"]
        report["checks_extrapolated"] = [
            check(adjusted, "performance", None, held, boot),
            check(adjusted, "power", ["params"], held, boot),
        ]
    report["status"] = "fitted"
    return report


def complete_sweep(name: str) -> tuple[pd.DataFrame | None, dict[str, Any]]:
    """(finished cells, report) when every cell of the sweep finished, else (None, report saying why)."""
    t = load(name)
    if t is None:
        return None, {"sweep": name, "status": "not run"}
    done = t[t["status"] == "finished"].copy()
    report: dict[str, Any] = {"sweep": name, "cells": len(t), "finished": len(done)}
    if len(done) < len(t):
        report["status"] = f"only {len(done)} of {len(t)} cells finished: not fitted yet"
        return None, report
    return done, report


def data_sweep(boot: int) -> dict[str, Any]:
    done, report = complete_sweep(DATA_SWEEP)
    if done is None:
        return report
    report["unconverged"] = done.loc[unconverged(done), "name"].astype(str).tolist()
    report["table"] = done[["name", "depth", "width", "non_embedding_params", "data_fraction",
                            "data_train_targets_per_epoch", "epochs_run", "best_epoch", f"{WHICH}_hr@10",
                            f"{WHICH}_{METRIC}", "wall_time_s"]].sort_values(["non_embedding_params", "data_fraction"]).to_dict("records")  # fmt: skip
    report["noise_by_fraction"] = [
        {"fraction": float(f), **noise(g)} for f, g in done.groupby("data_fraction")
    ]
    held = done["data_fraction"] >= done["data_fraction"].max()
    # data enters as the size of the training data (targets per epoch), a design variable; the targets a
    # run trained on (train_tokens) are set by early stopping, unknown before the run
    report["checks"] = [
        check(done, "performance", None, held, boot, {"form": "tied"}),
        check(done, "chinchilla", ["params", "tokens"], held, boot),
        check(done, "power", ["compute"], held, boot),  # one epoch's FLOPs: parameters x data
    ]
    report["status"] = "fitted"
    return report


def data_terms(name: str) -> dict[str, float]:
    """The data-quality columns of a sweep's dataset (data_entropy_m*, their coverage), computed from its
    spec's data settings exactly as the trainer computes them: rows written before the trainer recorded
    them lack them, and the data is the same for every cell of a size sweep."""
    from scalelab.data.cond_entropy import choose_m
    from scalelab.data.loader import load_dataset
    from scalelab.sweeps.spec import load_sweep

    _, cells = load_sweep(ROOT / "sweeps" / f"{name}.yaml")
    data = load_dataset(cells[0].config.data)
    chosen, by_m = choose_m(data.ptr, data.items, m_max=2, last=50)
    return {
        "data_entropy": chosen.value,
        "data_entropy_m": chosen.m,
        **{f"data_entropy_m{e.m}": e.value for e in by_m},
        **{f"data_entropy_m{e.m}_coverage": e.coverage for e in by_m},
    }


def across_datasets(reports: list[dict[str, Any]], k: int, boot: int) -> dict[str, Any]:
    """The tied Performance Law over the complete size sweeps together: one set of depth and width
    terms for every dataset, each dataset's level set by D' from its training data and its entropy.
    The `k` largest sizes of every dataset are held out, as in the per-dataset checks. Against the same
    law with the data-quality term switched off (the entropy held constant, so lambda is fixed at 0)
    and with the pooled ApEn (the Performance-Law paper's term)."""
    report: dict[str, Any] = {"sweep": "across datasets"}
    complete = [r["sweep"] for r in reports if r["sweep"] in SIZE_SWEEPS and r["status"] == "fitted"
                and r["finished"] == r["cells"]]  # fmt: skip
    report["datasets"] = complete
    if len(complete) < 3:
        report["status"] = (
            f"needs 3 complete size sweeps ({len(complete)} so far): with two datasets the data term has two values "
            "and fits any pair of levels"
        )
        return report
    parts = []
    for name in complete:
        t = load(name)
        assert t is not None
        t = t[t["status"] == "finished"].copy()
        computed = data_terms(name)
        recorded = t.get("data_entropy_m0")
        if recorded is not None and recorded.notna().any():  # the trainer's own record agrees with ours
            assert np.allclose(recorded.dropna(), computed["data_entropy_m0"], rtol=1e-9), name
        for col, v in computed.items():
            t[col] = t[col].fillna(v) if col in t else v
        t["name"] = name.removeprefix("laws_real_") + ": " + t["name"].astype(str)
        sizes = np.sort(t["non_embedding_params"].unique())
        t["_held"] = t["non_embedding_params"] >= sizes[-k]
        parts.append(t)
    # the data-fraction sweep's cells (ML-1M at 1/8..1 of its users, trained here with their data terms
    # recorded) add levels at other training-data sizes: fitted, never held out
    fractions = next((r for r in reports if r["sweep"] == DATA_SWEEP and r["status"] == "fitted"), None)
    if fractions is not None and (t := load(DATA_SWEEP)) is not None:
        t = t[t["status"] == "finished"].copy()
        t["name"] = "ml1m_data: " + t["name"].astype(str)
        t["_held"] = False
        parts.append(t)
        report["datasets"] = [*complete, DATA_SWEEP]
    table = pd.concat(parts, ignore_index=True)
    held = table.pop("_held")
    levels = table.groupby(["data_train_targets_per_epoch", "data_entropy_m0"]).ngroups
    report["levels"] = int(levels)
    report["cells"] = report["finished"] = len(table)
    report["by_dataset"] = (
        with_entropy(table)
        .groupby("name", sort=False)
        .first()
        .assign(dataset=lambda d: d.index.str.split(":").str[0])
        .drop_duplicates(["dataset", "data_train_targets_per_epoch"])[["dataset", "data_users", "data_items", "data_train_targets_per_epoch",
                                     "entropy", "data_entropy_m1", "data_entropy_m1_coverage",
                                     "data_apen_m2_last50_pooled"]]
        .to_dict("records")
    )  # fmt: skip
    flat = with_entropy(table)
    flat["entropy"] = float(flat["entropy"].median())  # no data-quality term: lambda fixed at 0
    variables = ["depth", "width", "tokens"]
    report["checks"] = [
        check(table, "performance", [*variables, "entropy"], held, boot, {"form": "tied"}),
        check(table, "performance", [*variables, "apen"], held, boot, {"form": "tied"}),
        check(flat.drop(columns=["data_entropy_m"]), "performance", [*variables, "entropy"], held, boot,
              {"form": "tied"}),
    ]  # fmt: skip
    report["checks"][2]["law"] = "performance (no data-quality term)"
    for c in report["checks"]:  # one best configuration across datasets is not a question here
        for key in ("decision", "measured_best", "measured_best_inside"):
            c.pop(key, None)
    report["per_dataset"] = {
        r["sweep"]: next(c["mean_abs_rel_error"] for c in r["checks"] if c["law"] == "performance")
        for r in reports
        if r["sweep"] in complete
    }
    report["status"] = "fitted"
    return report


def decision_text(dec: dict[str, Any]) -> str:
    """A law's recommendation in a few words: its status and values with their 95% intervals."""
    if dec["status"] == "monotone":
        return f"a power law in {', '.join(dec['values'])} recommends the largest value measured"
    vals = ", ".join(
        f"{k} {v:.4g}"
        + (f" [{dec['ci95'][k][0]:.4g}, {dec['ci95'][k][1]:.4g}]" if k in dec.get("ci95", {}) else "")
        for k, v in dec["values"].items()
        if k in dec.get("region", {})
    )
    edge = ", ".join(f"{k} {d}" for k, d in dec.get("directions", {}).items())
    return f"{dec['status']}: {vals}" + (
        f"; improving toward {edge}" if dec["status"] == "edge" and edge else ""
    )


def fmt_check(c: dict[str, Any]) -> list[str]:
    lines = [
        f"**{c['law']}** on {', '.join(c['variables'])}: fitted on {c['fitted_on']} cells, in-sample "
        f"R^2 {c['r2']:.3f}; held-out mean |relative error| **{c['mean_abs_rel_error']:.1%}**",
        "",
        "| held-out cell | non-emb. params | measured | predicted | 95% interval | rel. error | inside |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in c["held_out"]:
        lines.append(
            f"| {r['name']} | {r['non_embedding_params']:,} | {r['measured']:.4f} | {r['predicted']:.4f} | "
            f"[{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}] | {r['rel_error']:+.1%} | {'yes' if r['inside'] else 'no'} |"
        )
    dec = c.get("decision")
    mb = c.get("measured_best")
    if dec and mb:
        lines += ["", f"Recommendation ({decision_text(dec)}); measured best {mb['name']} ({mb['value']:.4f}): "
                  f"**{'inside' if c.get('measured_best_inside') else 'not inside'}** the recommendation."]  # fmt: skip
    if c["warnings"]:
        lines += ["", "Fit warnings: " + "; ".join(c["warnings"])]
    return [*lines, ""]


def fmt_extrapolated(rows: list[dict[str, Any]]) -> list[str]:
    gains = [r["gain"] for r in rows]
    return [
        "How much the epoch limit left on the table: each not-converged cell's test curve over the second half of "
        "its run, extrapolated to twice its epochs (saturating power law in epochs, `fitters.curves.predict_final`, "
        "95% bootstrap interval of the curve points; the choice of window moves the estimate by a few percent "
        f"more), against the value the fits use. Predicted gains {min(gains):+.1%} to {max(gains):+.1%}.",
        "",
        f"| cell | epochs | {METRIC.upper()} used | predicted at | predicted | 95% interval | gain |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {r['name']} | {r['epochs']} | {r['used']:.4f} | epoch {r['at_epoch']} | {r['predicted']:.4f} | "
            f"[{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}] | {r['gain']:+.1%} |"
            for r in rows
        ),
        "",
    ]


def summary(reports: list[dict[str, Any]]) -> list[str]:
    """One row per fitted check: the numbers a reader wants first, each repeated from its section below."""
    rows = [
        f"| {r['sweep'].removeprefix('laws_real_')} | {c['law']} on {', '.join(c['variables'])} | {c['fitted_on']} | "
        f"{len(c['held_out'])} | **{c['mean_abs_rel_error']:.1%}** | "
        f"{sum(x['inside'] for x in c['held_out'])} of {len(c['held_out'])} | "
        + ("-" if "measured_best_inside" not in c else "yes" if c["measured_best_inside"] else "no")
        + " |"
        for r in reports
        for c in r.get("checks", [])
    ]
    if not rows:
        return []
    waiting = [r["sweep"] for r in reports if r["status"] != "fitted"]
    return [
        "## Summary",
        "",
        "Each law fitted on all but the largest cells of a sweep, then asked for the held-out ones (details, "
        "intervals and fit warnings in the sections below). Inside: the measured value in the prediction's 95% "
        "interval. Best inside: the measured best cell inside the 95% interval of the law's recommendation.",
        "",
        "| sweep | law | fitted cells | held-out cells | mean abs. rel. error | inside | best inside |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        *([f"Not fitted yet: {', '.join(waiting)}.", ""] if waiting else []),
    ]


def markdown(reports: list[dict[str, Any]], args: argparse.Namespace) -> str:
    md = [
        "# Laws on real data: held-out prediction of the largest cells",
        "",
        "Generated by `.venv/bin/python bench/laws_real.py"
        + (f" --holdout {args.holdout}" if args.holdout != 3 else "")
        + f"` ({args.bootstrap} bootstrap resamples) from the runs tables of the sweeps below; metric: test "
        f"{METRIC.upper()} at the epoch of the best validation {METRIC.upper()} (leave-two-out, early stopping). "
        "Sweeps (each resumes when re-run): "
        + ", ".join(f"`scalelab sweep sweeps/{s}.yaml`" for s in (*SIZE_SWEEPS, DATA_SWEEP))
        + ". On 2 CPU cores each takes hours (the wall times below include time shared with other jobs; cells"
        " whose earlier attempts ended before attempts were timed show only their last attempt, e.g. a few minutes"
        " for a cell of 46 epochs). The sweeps train on length-bucketed batches with each step's loss the mean over"
        " its batch's targets (`train.target_weights: batch`), which weighs a short user's targets about 4x a long"
        " user's (`python bench/target_weights.py`); every cell trains the same way, so the laws are checked on"
        " one consistent recipe, not on the shuffled-batch objective.",
        "",
        *summary(reports),
    ]
    for r in reports:
        count = (
            f" ({r.get('finished', 0)} of {r.get('cells', 0)} cells finished)"
            if r["status"] == "fitted"
            else ""
        )
        md += [f"## {r['sweep']}", "", f"Status: {r['status']}{count}", ""]
        if r.get("table"):
            data = "data_fraction" in r["table"][0]  # the data-fraction sweep: its data columns too
            md += ["| cell | depth | width | non-emb. params | " + ("data fraction | training targets/epoch | " if data else "")
                   + "epochs | best epoch | HR@10 | NDCG@10 | wall time |",
                   "|---|---|---|---|" + ("---|---|" if data else "") + "---|---|---|---|---|"]  # fmt: skip
            for row in r["table"]:
                cells = (
                    f"{row['data_fraction']:.3g} | {int(row['data_train_targets_per_epoch']):,} | "
                    if data
                    else ""
                )
                md.append(
                    f"| {row['name']} | {row['depth']} | {row['width']} | {int(row['non_embedding_params']):,} | "
                    f"{cells}{int(row['epochs_run'])} | {int(row['best_epoch'])} | {row[f'{WHICH}_hr@10']:.4f} | "
                    f"{row[f'{WHICH}_{METRIC}']:.4f} | {row['wall_time_s'] / 60:.0f} min |"
                )
            md.append("")
            if r.get("noise"):
                n = r["noise"]
                md += [f"Measurement noise: {n['users']:,} test users, so HR@10 near {n['hr']:.3f} has a binomial "
                       f"standard error of {n['se_hr']:.4f}; differences between cells smaller than about twice that "
                       "are not resolved by one seed.", ""]  # fmt: skip
            if r.get("noise_by_fraction"):
                md += ["Measurement noise: the test users are the fraction's users, so HR@10 has a binomial standard "
                       "error of " + ", ".join(f"{n['se_hr']:.4f} at {n['fraction']:.3g} ({n['users']:,} users, HR@10 "
                       f"near {n['hr']:.3f})" for n in r["noise_by_fraction"]) + "; the validation metric that picks "
                       "each cell's epoch is as noisy, so on small fractions the selected epoch is partly a noise peak.",
                       ""]  # fmt: skip
            if r.get("unconverged"):
                md += [f"Not converged (best epoch = last): {', '.join(r['unconverged'])}", ""]
            if r.get("extrapolated"):
                md += fmt_extrapolated(r["extrapolated"])
        if r.get("by_dataset"):
            md += ["The tied law shares its depth and width terms across the datasets; each dataset's level comes "
                   "from D', ln D' = kappa ln(T / T0) - lambda (H - H0), with T the training targets per epoch and H "
                   f"the data-quality term. The fitted cells span {r['levels']} data levels (distinct T, H) and the "
                   "level terms have four parameters (b, w5, kappa, lambda): "
                   + ("with four levels or fewer any data term that orders the levels can fit them, and only its "
                      "sign constraint (lambda >= 0: more entropy, lower D') is tested; what the held-out cells test "
                      "is the depth and width terms shared across datasets." if r["levels"] <= 4 else
                      "more levels than level parameters, so the data term itself is tested.")
                   + " The data:", "",
                   "| dataset | users | items | training targets/epoch | entropy H (m=0) | H(next given 1), coverage "
                   "| pooled ApEn m=2 |", "|---|---|---|---|---|---|---|"]  # fmt: skip
            for d in r["by_dataset"]:
                md.append(
                    f"| {d['dataset']} | {int(d['data_users']):,} | {int(d['data_items']):,} | "
                    f"{int(d['data_train_targets_per_epoch']):,} | {d['entropy']:.4f} | {d['data_entropy_m1']:.4f} "
                    f"({d['data_entropy_m1_coverage']:.2f}) | {d['data_apen_m2_last50_pooled']:.4f} |"
                )
            md.append("")
        for c in r.get("checks", []):
            md += fmt_check(c)
        if r.get("per_dataset"):
            md += ["For comparison, the per-dataset Performance Law (its own depth and width terms on each dataset, "
                   "above) on the same held-out cells: "
                   + "; ".join(f"{k.removeprefix('laws_real_')} {v:.1%}" for k, v in r["per_dataset"].items())
                   + " mean |relative error|.", ""]  # fmt: skip
        if r.get("checks_extrapolated"):
            md += ["Sensitivity to the epoch limit: the same checks with each not-converged cell's extrapolated value "
                   "(table above) in place of its measured one.", ""]  # fmt: skip
            for c, a in zip(r["checks"], r["checks_extrapolated"], strict=True):
                md.append(
                    f"- {c['law']}: held-out mean |relative error| {a['mean_abs_rel_error']:.1%} (measured values: "
                    f"{c['mean_abs_rel_error']:.1%}); held-out cells inside their intervals "
                    f"{sum(x['inside'] for x in a['held_out'])} of {len(a['held_out'])} (measured: "
                    f"{sum(x['inside'] for x in c['held_out'])}); recommendation "
                    f"({decision_text(a['decision']) if a.get('decision') else 'none'}): best cell "
                    f"{a['measured_best']['name']} {'inside' if a.get('measured_best_inside') else 'not inside'}."
                )
            md.append("")
    return "\n".join(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweeps", nargs="+", default=[*SIZE_SWEEPS, DATA_SWEEP])
    ap.add_argument("--holdout", type=int, default=3, help="distinct largest sizes held out")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument(
        "--min-cells", type=int, default=12, help="finished cells a size sweep needs to be fitted"
    )
    ap.add_argument("--out", default=str(ROOT / "results" / "reference" / "laws-real.md"))
    ap.add_argument("--md", action="store_true", help="only rewrite the .md from the .json record")
    ap.add_argument(
        "--archive-only",
        action="store_true",
        help="only keep the sweeps' runs tables (and curves) beside the record",
    )
    args = ap.parse_args()
    if args.md:
        reports = json.loads(Path(args.out).with_suffix(".json").read_text())
        Path(args.out).write_text(markdown(reports, args))
        return
    for name in args.sweeps:
        archive(name)
        if args.archive_only and (table := load(name)) is not None:
            curves(name, table)
    if args.archive_only:
        return
    reports = [
        data_sweep(args.bootstrap)
        if s == DATA_SWEEP
        else size_sweep(s, args.holdout, args.bootstrap, args.min_cells)
        for s in args.sweeps
    ]
    reports.append(across_datasets(reports, args.holdout, args.bootstrap))
    Path(args.out).write_text(markdown(reports, args))
    Path(args.out).with_suffix(".json").write_text(json.dumps(reports, indent=2, default=float))
    print(Path(args.out).read_text())


if __name__ == "__main__":
    main()
