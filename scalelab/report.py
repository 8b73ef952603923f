"""`scalelab report`: the tables and plots a reviewer looks at, as self-contained HTML and Markdown.

Writes `results/<sweep>/report/`: `report.html` (images embedded), `report.md` (images beside it),
PNG plots (metric and loss against non-embedding parameters per family, metric against data tokens
for data sweeps, learning curves, the fitted laws found under `fits/`), and the paper-style table
(rows: architecture or variant, columns: depth or width, cells HR@10 / NDCG@10, best in bold).
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalelab.errors import UserError

METRICS = ("hr@10", "ndcg@10")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


RUNS_COLUMNS = ("name", "status", "family", "depth", "width", "data_fraction")  # what the report reads


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


def variant_label(row: pd.Series, varying: list[str]) -> str:
    parts = [str(row["family"])]
    for col in varying:
        parts.append(f"{col.split('.')[-1]}={row[col]}")
    return " ".join(parts)


def paper_table(table: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Rows: variant; columns: the size axis (depth, else width); cells 'HR@10 / NDCG@10'."""
    done = table[table["status"] == "finished"].copy()
    if done.empty:
        raise UserError("the sweep has no finished trials to report")
    axis = "depth" if done["depth"].nunique() > 1 else "width"
    other = [c for c in ("depth", "width", "data_fraction") if c != axis and done[c].nunique() > 1]
    switches = [
        c
        for c in done.columns
        if c.startswith("cfg.model.")
        and c.split(".")[-1] in ("rab", "attention", "gate", "residual", "fuxi_channels")
        and done[c].astype(str).nunique() > 1
    ]
    done["variant"] = done.apply(lambda r: variant_label(r, other + switches), axis=1)
    cols = sorted(done[axis].unique())
    best = {m: done[f"final_{m}"].max() for m in METRICS}
    out = pd.DataFrame(
        index=sorted(done["variant"].unique()), columns=[f"{axis}={c}" for c in cols], dtype=object
    )
    for _, r in done.iterrows():
        cell = " / ".join(
            (
                f"**{r[f'final_{m}']:.4f}**"
                if np.isclose(r[f"final_{m}"], best[m])
                else f"{r[f'final_{m}']:.4f}"
            )
            for m in METRICS
        )
        out.loc[r["variant"], f"{axis}={r[axis]}"] = cell
    return out.fillna("-"), axis


def _scatter_lines(ax: Any, table: pd.DataFrame, x: str, y: str) -> None:
    for fam, grp in table.groupby("label"):
        g = grp.sort_values(x)
        ax.plot(g[x], g[y], marker="o", label=fam)


def make_plots(table: pd.DataFrame, root: Path, out: Path) -> list[tuple[str, Path]]:
    plt = _plt()
    done = table[table["status"] == "finished"].copy()
    switches = [
        c
        for c in done.columns
        if c.startswith("cfg.model.")
        and c.split(".")[-1] in ("rab", "attention", "gate", "residual")
        and done[c].astype(str).nunique() > 1
    ]
    done["label"] = done.apply(
        lambda r: " ".join([str(r["family"])] + [f"{c.split('.')[-1]}={r[c]}" for c in switches]), axis=1
    )
    if done["width"].nunique() > 1 and done["depth"].nunique() > 1:
        done["label"] = done["label"] + " D" + done["width"].astype(str)
    plots: list[tuple[str, Path]] = []

    def size_plot(x: str, y: str, xlabel: str, ylabel: str, title: str, name: str) -> None:
        """One line per family/variant, log x axis."""
        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
        _scatter_lines(ax, done, x, y)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / name)
        plt.close(fig)
        plots.append((title, out / name))

    params = "non-embedding parameters (log scale)"
    for metric in METRICS:
        size_plot(
            "non_embedding_params",
            f"final_{metric}",
            params,
            f"{metric.upper()} (test, full ranking)",
            f"{metric.upper()} against non-embedding parameters",
            f"scaling_{metric.replace('@', '_at_')}.png",
        )
    if "final_loss" in done:
        size_plot(
            "non_embedding_params",
            "final_loss",
            params,
            "training loss (last epoch, nats)",
            "Training loss against non-embedding parameters",
            "scaling_loss.png",
        )
    if done["data_fraction"].nunique() > 1 and "data_train_targets_per_epoch" in done:
        size_plot(
            "data_train_targets_per_epoch",
            "final_ndcg@10",
            "training tokens (targets per epoch, log scale)",
            "NDCG@10 (test)",
            "NDCG@10 against training tokens",
            "data_scaling.png",
        )

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    drawn = 0
    for _, r in done.iterrows():
        summary = root / "trials" / str(r["cell_id"]) / "summary.json"
        if not summary.exists():
            continue
        hist = json.loads(summary.read_text()).get("history", [])
        key = "valid_ndcg@10" if any("valid_ndcg@10" in h for h in hist) else "test_ndcg@10"
        pts = [(h["epoch"], h[key]) for h in hist if key in h]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker=".", label=str(r["name"]))
            drawn += 1
    if drawn:
        ax.set_xlabel("epoch")
        ax.set_ylabel("NDCG@10 (validation when available, else test)")
        ax.set_title("Learning curves")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        path = out / "learning_curves.png"
        fig.savefig(path)
        plots.append(("Learning curves", path))
    plt.close(fig)
    return plots


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
        fits.append((d, png if png.exists() else None))
    comparison = compare_sweeps([name_or_dir, *compare]) if compare else None

    counts = table["status"].value_counts().to_dict()
    md = [
        f"# Sweep report: {root.name}",
        "",
        f"Trials: {len(table)} ({', '.join(f'{v} {k}' for k, v in counts.items())}). Metrics: test split, full "
        "ranking over the whole catalogue, history filtered, last epoch.",
        "",
        f"## HR@10 / NDCG@10 by variant and {axis} (best in bold)",
        "",
        _markdown_table(ptable),
        "",
    ]
    for title, path in plots:
        md += [f"## {title}", "", f"![{title}]({path.name})", ""]
    for d, png in fits:
        md += [
            f"## Fitted {d['law']} law on {d['metric']}",
            "",
            f"R^2 {d['r2']:.4f}, RMSE {d['rmse']:.4g}"
            + (
                f"; held-out mean relative error {d['holdout']['mean_rel_error']:.2%}"
                if "mean_rel_error" in d.get("holdout", {})
                else ""
            ),
            "",
        ]
        md += ["| parameter | value | 95% interval |", "|---|---|---|"]
        for k, v in d["params"].items():
            if k in d.get("ci95", {}):
                lo, hi = d["ci95"][k]
                md.append(f"| {k} | {v:.5g} | [{lo:.4g}, {hi:.4g}] |")
            else:
                ident = d.get("identifiable", {}).get(k, True)
                md.append(f"| {k} | {v:.5g} | {'-' if ident else 'not identifiable'} |")
        dec = d.get("decision")
        if dec:
            values = ", ".join(
                f"{k} {v:.4g}"
                + (f" [{dec['ci95'][k][0]:.4g}, {dec['ci95'][k][1]:.4g}]" if k in dec["ci95"] else "")
                for k, v in dec["values"].items()
                if k in dec["region"]
            )
            md += ["", f"Decision ({dec['status']}): {values}. {dec['message']}."]
        elif d.get("optimum"):
            md += ["", "Predicted optimum: " + ", ".join(f"{k} = {v:.3g}" for k, v in d["optimum"].items())]
        if d.get("warnings"):
            md += ["", "Warnings:", "", *[f"- {w}" for w in d["warnings"]]]
        if png is not None:
            import shutil

            shutil.copyfile(png, out / png.name)
            md += ["", f"![{d['law']} fit]({png.name})"]
        md.append("")
    if comparison is not None:
        md += [
            "## Comparison across sweeps (NDCG@10 at equal sizes)",
            "",
            _markdown_table(comparison.reset_index().set_index("family")),
            "",
        ]
    (out / "report.md").write_text("\n".join(md))
    (out / "report.html").write_text(_html(root.name, md, out))
    return out


def compare_sweeps(names: list[str]) -> pd.DataFrame:
    """The same metric for the same (depth, width) side by side across sweeps."""
    frames = []
    for n in names:
        t, root = load_sweep_table(n)
        t = t[t["status"] == "finished"][["family", "depth", "width", "final_ndcg@10"]].copy()
        t = t.rename(columns={"final_ndcg@10": root.name})
        frames.append(t.set_index(["family", "depth", "width"]))
    return pd.concat(frames, axis=1).sort_index()


def _markdown_table(df: pd.DataFrame) -> str:
    header = [str(df.index.name or "")] + [str(c) for c in df.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for idx, row in df.iterrows():
        cells = [f"{v:.4f}" if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join([str(idx), *cells]) + " |")
    return "\n".join(lines)


def _html(title: str, md_lines: list[str], out: Path) -> str:
    """A minimal Markdown-to-HTML rendering with the images embedded (one self-contained file)."""
    body = []
    in_table = False
    for line in md_lines:
        if line.startswith("|") and not set(line) <= set("|-: "):
            cells = [c.strip() for c in line.strip("|").split("|")]
            tag = "th" if not in_table else "td"
            if not in_table:
                body.append("<table>")
                in_table = True
            body.append("<tr>" + "".join(f"<{tag}>{_inline(c)}</{tag}>" for c in cells) + "</tr>")
            continue
        if line.startswith("|"):
            continue  # the separator row
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("!["):
            alt, src = line[2:].split("](")
            data = base64.b64encode((out / src.rstrip(")")).read_bytes()).decode()
            body.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">')
        elif line:
            body.append(f"<p>{_inline(line)}</p>")
    if in_table:
        body.append("</table>")
    style = (
        "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "img{max-width:100%;margin:1em 0}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>"
    )


def _inline(text: str) -> str:
    out = html.escape(text)
    while "**" in out:
        out = out.replace("**", "<b>", 1).replace("**", "</b>", 1)
    return out
