"""`scalelab report`: the tables and plots a reviewer looks at, as self-contained HTML and Markdown.

Writes `results/<sweep>/report/`: `report.html` (images embedded), `report.md` (images beside it)
and the PNG plots. Contents:
- the paper-style table: one row per architecture or variant, one column per size (depth, else
  width), cells HR@10 / NDCG@10 on the test split (at the best validation epoch when the runs have a
  validation split), the best of each metric in bold;
- metric and loss against non-embedding parameters, one line per variant; metric against training
  tokens for data sweeps; metric against training FLOPs with the compute frontier; families side by
  side at equal sizes; learning curves;
- every law fitted under `fits/`: its plot (measured points, the law and its 95% band extrapolated
  beyond the measured range, held-out points circled) and a diagnostics block: formula, parameters
  with intervals, the hold-out verdict, the recommended configuration with its interval, warnings.

The report is built as a list of blocks (heading, paragraph, list, table, image) rendered twice, to
Markdown and to HTML, so a table is a table in both (cells are escaped, never spliced as text).
"""

from __future__ import annotations

import base64
import html
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalelab.errors import UserError

METRICS = ("hr@10", "ndcg@10")
RUNS_COLUMNS = ("name", "status", "family", "depth", "width", "data_fraction")  # what the report reads


# ------------------------------------------------------------------------------------------ blocks


@dataclass
class Cell:
    """A table cell: text parts, each bold or not (a paper-table cell holds two metrics)."""

    parts: list[tuple[str, bool]]

    @classmethod
    def of(cls, text: str, bold: bool = False) -> Cell:
        return cls([(text, bold)])


@dataclass
class Table:
    header: list[str]
    rows: list[list[Cell]]
    align_left: int = 1  # leading columns aligned left (labels); the rest right (numbers)


@dataclass
class Report:
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def h1(self, text: str) -> None:
        self.blocks.append(("h1", text))

    def h2(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def h3(self, text: str) -> None:
        self.blocks.append(("h3", text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def code(self, text: str) -> None:
        self.blocks.append(("code", text))

    def items(self, lines: list[str]) -> None:
        if lines:
            self.blocks.append(("list", lines))

    def table(self, t: Table) -> None:
        self.blocks.append(("table", t))

    def image(self, alt: str, path: Path) -> None:
        self.blocks.append(("img", (alt, path.name)))


def _md_cell(c: Cell) -> str:
    return "".join(f"**{t}**" if b else t for t, b in c.parts).replace("|", "\\|")


def to_markdown(r: Report) -> str:
    out: list[str] = []
    for kind, v in r.blocks:
        if kind in ("h1", "h2", "h3"):
            out += ["#" * int(kind[1]) + " " + v, ""]
        elif kind == "p":
            out += [v, ""]
        elif kind == "code":
            out += ["```", v, "```", ""]
        elif kind == "list":
            out += [*(f"- {x}" for x in v), ""]
        elif kind == "table":
            out.append("| " + " | ".join(h.replace("|", "\\|") for h in v.header) + " |")
            out.append("|" + "".join(":---|" if i < v.align_left else "---:|" for i in range(len(v.header))))
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in v.rows]
            out.append("")
        elif kind == "img":
            out += [f"![{v[0]}]({v[1]})", ""]
    return "\n".join(out)


def _html_cell(c: Cell) -> str:
    return "".join(f"<b>{html.escape(t)}</b>" if b else html.escape(t) for t, b in c.parts)


def to_html(r: Report, title: str, images: Path) -> str:
    """One self-contained page: images embedded as data URIs."""
    body: list[str] = []
    for kind, v in r.blocks:
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{html.escape(v)}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{html.escape(v)}</p>")
        elif kind == "code":
            body.append(f"<pre>{html.escape(v)}</pre>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in v) + "</ul>")
        elif kind == "table":
            left = [' class="l"' if i < v.align_left else "" for i in range(len(v.header))]
            head = "".join(f"<th{left[i]}>{html.escape(h)}</th>" for i, h in enumerate(v.header))
            rows = "".join(
                "<tr>" + "".join(f"<td{left[i]}>{_html_cell(c)}</td>" for i, c in enumerate(row)) + "</tr>"
                for row in v.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode((images / v[1]).read_bytes()).decode()
            body.append(f'<img alt="{html.escape(v[0])}" src="data:image/png;base64,{data}">')
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222;line-height:1.4}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;"
        "text-align:right;white-space:nowrap}td.l,th.l{text-align:left}th{background:#f3f3f3}"
        "img{max-width:100%;margin:1em 0}pre{background:#f6f6f6;padding:8px}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )


# ------------------------------------------------------------------------------------ formatting


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def fmt_int(v: Any) -> str:
    """Sizes and counts: integers, '-' when missing."""
    f = _finite(v)
    return "-" if f is None else f"{round(f):,}"


def fmt_metric(v: Any) -> str:
    f = _finite(v)
    return "-" if f is None else f"{f:.4f}"


def fmt_num(v: Any) -> str:
    f = _finite(v)
    return "-" if f is None else f"{f:.4g}"


# ------------------------------------------------------------------------------------------ tables


def load_sweep_table(name_or_dir: str) -> tuple[pd.DataFrame, Path]:
    root = Path(name_or_dir) if Path(name_or_dir).is_dir() else Path("results") / name_or_dir
    path = root / "runs.parquet" if (root / "runs.parquet").exists() else root / "runs.csv"
    if not path.exists():
        raise UserError(f"{root}: no runs table (run `scalelab sweep` for it first)")
    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (ValueError, OSError) as e:  # ParserError and ArrowInvalid are ValueErrors
        raise UserError(f"{path}: not a readable runs table ({e.__class__.__name__})") from None
    missing = [c for c in RUNS_COLUMNS if c not in table.columns]
    if missing:
        raise UserError(
            f"{path}: not a runs table written by `scalelab sweep` (missing column(s) {', '.join(missing)})"
        )
    return table, root.resolve()


def metric_prefix(table: pd.DataFrame) -> str:
    """`best_` (test metric at the best validation epoch) when the runs selected on validation,
    else `final_` (last epoch)."""
    from fitters.table import resolve_which

    best = resolve_which(table) == "best" and all(f"best_{m}" in table.columns for m in METRICS)
    return "best_" if best else "final_"


def _switches(done: pd.DataFrame, names: tuple[str, ...]) -> list[str]:
    return [
        c
        for c in done.columns
        if c.startswith("cfg.model.") and c.split(".")[-1] in names and done[c].astype(str).nunique() > 1
    ]


def variant_label(row: pd.Series, varying: list[str]) -> str:
    parts = [str(row["family"])]
    for col in varying:
        name = col.split(".")[-1]
        value = row[col]
        shown = (
            fmt_int(value)
            if name in ("depth", "width")
            else (f"{value:g}" if isinstance(value, float) else value)
        )
        parts.append(f"{name.replace('data_', '')} {shown}")
    return ", ".join(parts)


def paper_table(table: pd.DataFrame) -> tuple[Table, str]:
    """Rows: variant; columns: the size axis (depth, else width); cells 'HR@10 / NDCG@10'."""
    done = table[table["status"] == "finished"].copy()
    if done.empty:
        raise UserError("the sweep has no finished trials to report")
    prefix = metric_prefix(done)
    axis = "depth" if done["depth"].nunique() > 1 else "width"
    other = [c for c in ("depth", "width", "data_fraction") if c != axis and done[c].nunique() > 1]
    switches = _switches(done, ("rab", "attention", "gate", "residual", "fuxi_channels"))
    done["variant"] = done.apply(lambda r: variant_label(r, other + switches), axis=1)
    sizes = sorted(int(v) for v in done[axis].unique())
    best = {m: done[f"{prefix}{m}"].max() for m in METRICS}
    rows = []
    for variant in sorted(done["variant"].unique()):
        grp = done[done["variant"] == variant]
        row = [Cell.of(variant)]
        for s in sizes:
            hit = grp[grp[axis] == s]
            if hit.empty:
                row.append(Cell.of("-"))
                continue
            r = hit.iloc[0]
            parts: list[tuple[str, bool]] = []
            for i, m in enumerate(METRICS):
                v = r[f"{prefix}{m}"]
                parts.append((fmt_metric(v), bool(np.isfinite(v) and np.isclose(v, best[m]))))
                if i < len(METRICS) - 1:
                    parts.append((" / ", False))
            row.append(Cell(parts))
        rows.append(row)
    return Table(["variant", *[f"{axis} {s}" for s in sizes]], rows), axis


def compare_sweeps(names: list[str]) -> Table:
    """NDCG@10 for the same (family, depth, width) side by side across sweeps; '-' where a sweep
    did not run that configuration."""
    frames = []
    for n in names:
        t, root = load_sweep_table(n)
        prefix = metric_prefix(t)
        t = t[t["status"] == "finished"][["family", "depth", "width", f"{prefix}ndcg@10"]].copy()
        t = t.rename(columns={f"{prefix}ndcg@10": root.name})
        frames.append(t.groupby(["family", "depth", "width"]).first())
    joined = pd.concat(frames, axis=1).sort_index()
    rows = [
        [Cell.of(str(fam)), Cell.of(fmt_int(d)), Cell.of(fmt_int(w)), *(Cell.of(fmt_metric(v)) for v in r)]
        for (fam, d, w), r in joined.iterrows()
    ]
    return Table(["family", "depth", "width", *[str(c) for c in joined.columns]], rows, align_left=1)


# ------------------------------------------------------------------------------------------- plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _log_axis(ax: Any) -> None:
    """Log x axis with few, readable tick labels (10^k, no crowding)."""
    from matplotlib.ticker import LogLocator

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, numticks=6))
    ax.xaxis.set_minor_locator(LogLocator(base=10, subs=[k / 10 for k in range(2, 10)], numticks=12))


def _labels(done: pd.DataFrame) -> pd.Series:
    """Line labels: family, switches, and width when lines are drawn per width."""
    switches = _switches(done, ("rab", "attention", "gate", "residual"))
    label = done.apply(
        lambda r: ", ".join([str(r["family"])] + [f"{c.split('.')[-1]} {r[c]}" for c in switches]), axis=1
    )
    if done["width"].nunique() > 1 and done["depth"].nunique() > 1:
        label = label + ", width " + done["width"].astype(int).astype(str)
    return label


def make_plots(table: pd.DataFrame, root: Path, out: Path) -> list[tuple[str, Path]]:
    plt = _plt()
    done = table[table["status"] == "finished"].copy()
    prefix = metric_prefix(done)
    done["label"] = _labels(done)
    plots: list[tuple[str, Path]] = []

    def save(fig: Any, title: str, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        plots.append((title, out / name))

    def size_plot(x: str, y: str, xlabel: str, ylabel: str, title: str, name: str) -> None:
        fig, ax = plt.subplots(figsize=(7.2, 4.4), dpi=120)
        for lab, grp in done.groupby("label"):
            g = grp.sort_values(x)
            ax.plot(g[x], g[y], marker="o", label=lab)
        _log_axis(ax)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        save(fig, title, name)

    which = "best validation epoch" if prefix == "best_" else "last epoch"
    params = "non-embedding parameters (log scale)"
    for metric in METRICS:
        size_plot("non_embedding_params", f"{prefix}{metric}", params, f"{metric.upper()} (test, {which})",
                  f"{metric.upper()} against non-embedding parameters",
                  f"scaling_{metric.replace('@', '_at_')}.png")  # fmt: skip
    if "final_loss" in done and done["final_loss"].notna().any():
        size_plot("non_embedding_params", "final_loss", params, "training loss (last epoch, nats)",
                  "Training loss against non-embedding parameters", "scaling_loss.png")  # fmt: skip
    if done["data_fraction"].nunique() > 1 and "data_train_targets_per_epoch" in done:
        size_plot("data_train_targets_per_epoch", f"{prefix}ndcg@10", "training tokens (targets per epoch, log scale)",
                  f"NDCG@10 (test, {which})", "NDCG@10 against training tokens", "data_scaling.png")  # fmt: skip
    _compute_plot(done, prefix, which, plt, save)
    _family_plot(done, prefix, which, plt, save)
    _learning_curves(done, root, plt, save)
    return plots


def _compute_plot(done: pd.DataFrame, prefix: str, which: str, plt: Any, save: Any) -> None:
    """Metric against training FLOPs of each run, with the compute frontier (the best metric any
    run reached with at most that much compute)."""
    if not {"flops_per_epoch", "epochs_run"} <= set(done.columns):
        return
    flops = pd.to_numeric(done["flops_per_epoch"], errors="coerce") * pd.to_numeric(
        done["epochs_run"], errors="coerce"
    )
    y = pd.to_numeric(done[f"{prefix}ndcg@10"], errors="coerce")
    ok = np.isfinite(flops) & np.isfinite(y) & (flops > 0)
    if ok.sum() < 3 or flops[ok].nunique() < 3:
        return
    fig, ax = plt.subplots(figsize=(7.2, 4.4), dpi=120)
    for lab, grp in done[ok].groupby("label"):
        ax.scatter(flops[grp.index], y[grp.index], label=lab, zorder=3)
    order = np.argsort(flops[ok].to_numpy())
    fx, fy = flops[ok].to_numpy()[order], np.maximum.accumulate(y[ok].to_numpy()[order])
    ax.step(fx, fy, where="post", color="black", lw=1.2, label="compute frontier")
    _log_axis(ax)
    ax.set_xlabel("training FLOPs of the run (log scale)")
    ax.set_ylabel(f"NDCG@10 (test, {which})")
    ax.set_title("NDCG@10 against training compute")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save(fig, "NDCG@10 against training compute", "compute_frontier.png")


def _family_plot(done: pd.DataFrame, prefix: str, which: str, plt: Any, save: Any) -> None:
    """Families side by side at the (depth, width) they share."""
    if done["family"].nunique() < 2:
        return
    shared = done.groupby(["depth", "width"])["family"].nunique()
    sizes = [s for s, n in shared.items() if n >= 2]
    if not sizes:
        return
    fams = sorted(done["family"].unique())
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(sizes) + 3), 4.4), dpi=120)
    width = 0.8 / len(fams)
    for i, fam in enumerate(fams):
        vals = []
        for d, w in sizes:
            hit = done[(done["family"] == fam) & (done["depth"] == d) & (done["width"] == w)]
            vals.append(float(hit[f"{prefix}ndcg@10"].max()) if len(hit) else np.nan)
        ax.bar(np.arange(len(sizes)) + i * width, vals, width, label=fam)
    ax.set_xticks(np.arange(len(sizes)) + 0.4 - width / 2)
    ax.set_xticklabels([f"depth {int(d)}\nwidth {int(w)}" for d, w in sizes], fontsize=8)
    ax.set_ylabel(f"NDCG@10 (test, {which})")
    ax.set_title("Families at equal size")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    save(fig, "Families at equal size", "families.png")


def _learning_curves(done: pd.DataFrame, root: Path, plt: Any, save: Any) -> None:
    fig, ax = plt.subplots(figsize=(7.2, 4.4), dpi=120)
    drawn = 0
    for _, r in done.iterrows():
        summary = root / "trials" / str(r.get("cell_id", "")) / "summary.json"
        if not summary.exists():
            continue
        hist = json.loads(summary.read_text()).get("history", [])
        key = "valid_ndcg@10" if any("valid_ndcg@10" in h for h in hist) else "test_ndcg@10"
        pts = [(h["epoch"], h[key]) for h in hist if key in h]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker=".", label=str(r["name"]))
            drawn += 1
    if not drawn:
        plt.close(fig)
        return
    ax.set_xlabel("epoch")
    ax.set_ylabel("NDCG@10 (validation when available, else test)")
    ax.set_title("Learning curves")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    save(fig, "Learning curves", "learning_curves.png")


# -------------------------------------------------------------------------------------------- fits


def _read_fit(path: Path) -> dict[str, Any]:
    """A fit JSON, checked: a file that is not a complete fit is a one-line error naming it."""
    from scalelab.fitting import load_fit

    _, d = load_fit(path)
    ok = isinstance(d.get("metric"), str) and isinstance(d.get("params"), dict)
    if not ok or not all(isinstance(v, (int, float)) for v in d["params"].values()):
        raise UserError(
            f"{path}: not a fit written by `scalelab fit` (missing or malformed 'metric' or 'params')"
        )
    return d


def fit_section(rep: Report, d: dict[str, Any], png: Path | None) -> None:
    """Diagnostics of one fitted law: formula, parameters, hold-out verdict, decision, warnings."""
    rep.h2(f"Fitted {d['law']} law on {d['metric']} ({d.get('which', 'final')} test value)")
    rep.code(str(d.get("formula", "")))
    rep.p(
        f"Variables: {', '.join(d['variables'])}. Fitted on {d['n_points']} cells: R^2 {d['r2']:.4f}, "
        f"RMSE {d['rmse']:.4g}." + (f" {d['note']}." if d.get("note") else "")
    )
    ident = d.get("identifiable", {})
    rows = []
    for k, v in d["params"].items():
        ci = d.get("ci95", {}).get(k)
        interval = (
            f"[{fmt_num(ci[0])}, {fmt_num(ci[1])}]"
            if ci
            else ("not identifiable" if not ident.get(k, True) else "-")
        )
        rows.append([Cell.of(k), Cell.of(fmt_num(v)), Cell.of(interval)])
    rep.table(Table(["parameter", "value", "95% interval"], rows))
    h = d.get("holdout") or {}
    if "mean_rel_error" in h:
        verdict = "predicts them within 5%" if h["mean_rel_error"] <= 0.05 else "misses them by more than 5%"
        cells = "; ".join(
            f"{', '.join(fmt_num(x) for x in r['x'])}: measured {fmt_metric(r['measured'])}, predicted "
            f"{fmt_metric(r['predicted'])}"
            for r in h.get("rows", [])
        )
        rep.p(
            f"Hold-out check: refitted without the {len(h.get('rows', []))} largest cells, the law {verdict} "
            f"(mean relative error {h['mean_rel_error']:.1%}, max {h.get('max_rel_error', float('nan')):.1%}). "
            f"{cells}."
        )
    dec = d.get("decision")
    if dec:
        from scalelab.fitting import decision_values

        values = decision_values(dec, fmt_num)
        rep.p(f"Recommended configuration ({dec['status']}): {values}. {dec['message']}.")
    if d.get("warnings"):
        rep.p("Warnings:")
        rep.items([str(w) for w in d["warnings"]])
    if png is not None:
        rep.image(f"{d['law']} law on {d['metric']}", png)


# -------------------------------------------------------------------------------------------- main


def adaptive_section(rep: Report, root: Path) -> None:
    """The waves of an adaptive sweep (results/<sweep>/adaptive.json): cells measured, compute spent,
    the decision, its predicted metric with the 95% band, and how settled it was after each; the cells
    stopped early on their learning curve."""
    from scalelab.sweeps.adaptive import AdaptiveRun

    log = AdaptiveRun.read_log(root)
    waves = log.get("waves") or []
    if not waves:
        return
    full = float(waves[-1].get("full_grid_flops") or 0.0)

    def cell(c: dict | None) -> str:
        return f"depth {c['depth']:g}, width {c['width']:g}" if c else "-"

    rows = []
    for w in waves:
        spent = float(w.get("spent") or 0.0)
        settled = w.get("settled")
        pm = w.get("decision_metric")
        predicted = f"{pm['value']:.4f} [{pm['lo']:.4f}, {pm['hi']:.4f}]" if pm else "-"
        edge = w.get("no_interior_optimum") or {}
        ci = w.get("decision_ci95") or {}
        span = "; ".join(f"{a} {lo:g}-{hi:g}" for a, (lo, hi) in ci.items() if lo != hi)
        decision = (
            cell(w.get("decision"))
            + (f" (95%: {span})" if span else "")
            + (
                " (grid edge: " + ", ".join(f"{d} {a} may be better" for a, d in edge.items()) + ")"
                if edge
                else ""
            )
        )
        rows.append([
            Cell.of(str(w["wave"])), Cell.of(str(w.get("measured", 0))),
            Cell.of(f"{spent:.3g} ({spent / full:.0%})" if full else f"{spent:.3g}"),
            Cell.of(f"{float(w.get('hours_spent') or 0.0):.2f}"),
            Cell.of(decision), Cell.of(predicted), Cell.of("-" if settled is None else f"{settled:.2f}"),
            Cell.of(str(len(w.get("asked") or []))), Cell.of(str(w.get("reason") or "")),
        ])  # fmt: skip
    rep.h2("Adaptive design")
    last = waves[-1]
    rep.p(
        f"The law was fitted to {log.get('metric')} ({log.get('which')}) after each wave; the next wave took the cells "
        "most likely to be the best under the bootstrap distribution of the decision. "
        + (
            f"Final decision: {cell(last.get('decision'))} ({last.get('reason')})."
            if last.get("done")
            else "The design has not finished (re-run the sweep to continue it)."
        )
    )
    header = [
        "wave",
        "cells measured",
        "compute spent (FLOPs, share of the grid)",
        "training hours",
        "decision",
    ]
    header += [f"predicted {log.get('metric')} [95%]", "P(settled)", "cells asked next", "note"]
    rep.table(Table(header, rows, align_left=1))
    stopped = log.get("stopped") or {}
    names: dict[str, str] = {}
    if stopped and (root / "runs.csv").exists():
        import pandas as pd

        runs = pd.read_csv(root / "runs.csv", usecols=["cell_id", "name"])
        names = dict(zip(runs["cell_id"].astype(str), runs["name"].astype(str), strict=True))
    if stopped:
        rep.p(
            f"{len(stopped)} cell(s) stopped early on their learning curve (fitters/curves.py); their predicted "
            "finals stood in for measured ones, with their uncertainty:"
        )
        rep.table(Table(
            ["cell", "stopped at epoch", f"predicted final {log.get('metric')} [95%]", "decision's value then"],
            [[Cell.of(names.get(cid, cid)), Cell.of(f"{st['epoch']} of {st['epochs']}"),
              Cell.of(f"{st['value']:.4f} [{st['ci95'][0]:.4f}, {st['ci95'][1]:.4f}]"),
              Cell.of(f"{st['incumbent']:.4f}")] for cid, st in stopped.items()],
            align_left=1,
        ))  # fmt: skip


def write_report(name_or_dir: str, compare: list[str] | None = None) -> Path:
    table, root = load_sweep_table(name_or_dir)
    out = root / "report"
    out.mkdir(parents=True, exist_ok=True)
    ptable, axis = paper_table(table)
    plots = make_plots(table, root, out)
    fits = []
    for fj in sorted((root / "fits").glob("*.json")) if (root / "fits").exists() else []:
        d = _read_fit(fj)
        png = fj.with_suffix(".png")
        if png.exists():
            shutil.copyfile(png, out / png.name)
        fits.append((d, out / png.name if png.exists() else None))
    comparison = compare_sweeps([name_or_dir, *compare]) if compare else None

    done = table[table["status"] == "finished"]
    which = "the best validation epoch" if metric_prefix(done) == "best_" else "the last epoch"
    counts = table["status"].value_counts().to_dict()
    rep = Report()
    rep.h1(f"Sweep report: {root.name}")
    rep.p(
        f"Trials: {len(table)} ({', '.join(f'{v} {k}' for k, v in counts.items())}). Metrics: test split, full "
        f"ranking over the whole catalogue, items already in the history filtered, at {which}."
    )
    rep.h2(f"HR@10 / NDCG@10 by variant and {axis} (best of each in bold)")
    rep.table(ptable)
    for title, path in plots:
        rep.h2(title)
        rep.image(title, path)
    if fits:
        rep.h2("Fitted laws")
        rep.p(
            "Each plot shows the measured cells, the fitted law and its 95% bootstrap band, continued 10x past "
            "the largest measured value (right of the dotted line: extrapolation); held-out cells are circled."
        )
    for d, plot in fits:
        fit_section(rep, d, plot)
    if comparison is not None:
        rep.h2("Comparison across sweeps (NDCG@10 at equal sizes; - where a sweep did not run it)")
        rep.table(comparison)
    adaptive_section(rep, root)
    (out / "report.md").write_text(to_markdown(rep))
    (out / "report.html").write_text(to_html(rep, root.name, out))
    return out
