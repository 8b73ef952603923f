"""Adaptive sweeps on a real grid, replayed on the cells a full sweep measured (results/reference/adaptive_real/).

A full depth x width sweep (sweeps/laws_real_ml1m.yaml: HSTU on ML-1M, 16 cells, early stopping on
the validation item) records, per cell, its whole validation and test curve, the epochs it trained
and its FLOPs per epoch. Training is seeded, so a cell the adaptive design asks for would give what
the full sweep measured: the strategies are replayed on those records, each spending the compute of
the epochs it would have trained (FLOPs per epoch x epochs; training hours the same way, from the
measured mean epoch time).

Strategies (the decision metric is the test NDCG@10 at the best validation epoch, as in the sweep's
runs table and `scalelab fit`):
- full grid: every cell; the measured best cell, and the Performance Law's decision fitted to all;
- adaptive: `fitters.adaptive.AdaptiveDesigner` as `scalelab sweep --adaptive` runs it (Performance
  Law, first wave of 7, waves of 3, stop at P(settled) >= 0.9); `--seeds` designs differing in the
  bootstrap and Thompson draws;
- adaptive + curves: the same, each cell of a later wave shown its test curve evaluation by
  evaluation and stopped as the sweep's curve scheduler would (scalelab/sweeps/adaptive.py:
  `check_curve`), its predicted final and standard deviation standing in;
- Ray Tune's ASHA (bench/replay.py; grace period 2 epochs = the first evaluation, reduction factor 3,
  max_t = the epoch limit, 4 workers), ranking on the validation metric as a Tune run would; its answer
  is the best validation cell among those it trained to the end;
- random cells at the adaptive design's compute, the law deciding.
Success: the recommendation is the full grid's measured best cell, or within one grid step of it;
regret: how far the recommended cell's measured metric falls below the measured best.

    .venv/bin/python bench/adaptive_real.py --sweep laws_real_ml1m
        # writes results/reference/adaptive_real/laws_real_ml1m.md (+ .json), and keeps the cells'
        # curves in laws_real_ml1m-cells.json so that the record regenerates without results/
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from fitters import make_law
from fitters.adaptive import AdaptiveDesigner, Grid
from fitters.curves import FinalPrediction, can_matter, stop_candidate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine
from replay import best_of, ray_asha

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = ROOT / "results" / "reference" / "adaptive_real"  # the curves, kept with the record
METRIC = "ndcg@10"


def collect(sweep: str) -> dict[str, Any]:
    """Per finished cell: depth, width, the selected test metric, curves, epochs, FLOPs, epoch time.
    From the live sweep (results/<sweep>/trials) when present (archived then), else the archive."""
    live = ROOT / "results" / sweep
    path = ARCHIVE / f"{sweep}-cells.json"
    if not (live / "cells.json").exists():
        if not path.exists():
            raise SystemExit(
                f"no results/{sweep}/ and no archive {path}: run `scalelab sweep sweeps/{sweep}.yaml`"
            )
        return json.loads(path.read_text())
    spec = json.loads((live / "spec.json").read_text())
    cells = []
    for d in sorted((live / "trials").iterdir()):
        f = d / "summary.json"
        if not f.exists():
            continue
        s = json.loads(f.read_text())
        if s.get("status") != "finished":
            continue
        m = s["config"]["model"]
        hist = s["history"]
        evals = [h for h in hist if f"valid_{METRIC}" in h]
        cells.append({
            "cell_id": d.name, "name": s["name"], "depth": m["depth"], "width": m["width"],
            "value": s["best_test"][METRIC], "hr10": s["best_test"].get("hr@10"),
            "test_users": s["dataset"]["users"], "epochs_run": s["epochs_run"], "epoch_limit": s["config"]["train"]["epochs"],
            "flops_per_epoch": s["flops_per_epoch"], "mean_epoch_time_s": s["mean_epoch_time_s"],
            "eval_epochs": [h["epoch"] for h in evals], "valid": [h[f"valid_{METRIC}"] for h in evals],
            "test": [h[f"test_{METRIC}"] for h in evals],
        })  # fmt: skip
    grid = {k.split(".")[-1]: v for k, v in spec["grid"].items()}
    out = {"sweep": sweep, "grid": grid, "cells": cells}
    ARCHIVE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    return out


class Replay:
    """The recorded cells on the designer's grid; what each strategy spends."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.grid = Grid({"depth": [float(v) for v in data["grid"]["depth"]],
                          "width": [float(v) for v in data["grid"]["width"]]})  # fmt: skip
        self.cells: dict[int, dict[str, Any]] = {}
        for c in data["cells"]:
            hit = np.flatnonzero((self.grid.values == [c["depth"], c["width"]]).all(1))
            self.cells[int(hit[0])] = c
        n = len(self.grid)
        self.present = np.array([i in self.cells for i in range(n)])
        big = 1e300  # a cell the sweep has not measured (yet) is never affordable, never the decision
        self.cost_full = np.array([self.cells[i]["flops_per_epoch"] * self.cells[i]["epoch_limit"]
                                   if i in self.cells else big for i in range(n)])  # fmt: skip
        self.value = {i: float(c["value"]) for i, c in self.cells.items()}
        self._predictions: dict[tuple[int, int], FinalPrediction | None] = {}

    def curve_prediction(self, i: int, k: int) -> FinalPrediction | None:
        """The early-stopping prediction from cell i's first k + 1 evaluations (what the curve scheduler
        computes there). It depends on the curve alone, so every design shares it: computed once."""
        if (i, k) not in self._predictions:
            c = self.cells[i]
            e = np.array(c["eval_epochs"][: k + 1], dtype=float)
            self._predictions[i, k] = stop_candidate(e, np.array(c["test"][: k + 1]), c["epoch_limit"])
        return self._predictions[i, k]

    def spent(self, i: int, epochs: float | None = None) -> tuple[float, float]:
        c = self.cells[i]
        e = c["epochs_run"] if epochs is None else epochs
        return c["flops_per_epoch"] * e, c["mean_epoch_time_s"] * e / 3600

    def full_cost(self) -> tuple[float, float]:
        f, h = zip(*(self.spent(i) for i in self.cells), strict=True)
        return float(sum(f)), float(sum(h))

    def law(self) -> Any:
        return make_law("performance", ["depth", "width"], y_range=(0, 1))

    def designer(self, seed: int, boot: int) -> AdaptiveDesigner:
        budget = float(self.cost_full[self.present].sum())
        return AdaptiveDesigner(self.law(), self.grid, self.cost_full, seed=seed, bootstrap=boot,
                                feasible=self.present, budget=budget)  # fmt: skip


def adaptive(r: Replay, seed: int, boot: int, curves: bool) -> dict[str, Any]:
    d = r.designer(seed, boot)
    flops = hours = 0.0
    stopped: list[str] = []

    def measure(cells: list[int]) -> dict[int, float | tuple[float, float]]:
        nonlocal flops, hours
        out: dict[int, float | tuple[float, float]] = {}
        inc = d.incumbent() if curves else None
        decision = d.waves[-1].decision if d.waves else -1
        for i in cells:
            c = r.cells[i]
            if inc is not None and i != decision:  # the curve scheduler's test (AdaptiveRun.check_curve)
                for k in range(len(c["eval_epochs"])):
                    e = c["eval_epochs"][k]
                    if e >= c["epochs_run"]:  # the cell's last evaluation: it ends there anyway
                        break
                    pred = r.curve_prediction(i, k)
                    if pred is not None and not can_matter(pred, inc):
                        f, h = r.spent(i, e)
                        flops, hours = flops + f, hours + h
                        out[i] = (pred.value, (pred.ci95[1] - pred.ci95[0]) / 3.92)
                        stopped.append(c["name"])
                        break
            if i not in out:
                f, h = r.spent(i)
                flops, hours = flops + f, hours + h
                out[i] = r.value[i]
        return out

    w = d.run(measure)
    return {"cell": w.decision, "flops": flops, "hours": hours, "waves": len(d.waves), "measured": w.measured,
            "settled": w.settled, "reason": w.reason, "edge": w.edge, "stopped": stopped}  # fmt: skip


def asha(r: Replay) -> dict[str, Any]:
    cells = sorted(r.cells)
    valid = {i: dict(zip(r.cells[i]["eval_epochs"], r.cells[i]["valid"], strict=True)) for i in cells}
    limit = max(r.cells[i]["epoch_limit"] for i in cells)
    last, trained, spent = ray_asha(
        cells, lambda i, e: valid[i].get(e), lambda i: r.cells[i]["epochs_run"],
        lambda i: r.cells[i]["flops_per_epoch"], higher_is_better=True, max_t=limit, grace=2, workers=4,
    )  # fmt: skip
    done = {i: v for i, v in last.items() if trained[i] >= r.cells[i]["epochs_run"]}
    hours = sum(r.spent(i, trained[i])[1] for i in trained)
    return {"cell": best_of(done or last, True), "flops": spent, "hours": hours,
            "trained_to_end": len(done)}  # fmt: skip


def random_equal(r: Replay, seed: int, budget: float) -> dict[str, Any]:
    order = np.random.default_rng(10_000 + seed).permutation(sorted(r.cells))
    flops = hours = 0.0
    measured: dict[int, float] = {}
    for i in order:
        f, h = r.spent(int(i))
        if flops + f > budget:
            continue
        flops, hours = flops + f, hours + h
        measured[int(i)] = r.value[int(i)]
    w = r.designer(seed, 0).update(measured)
    cell = w.decision if w.decision >= 0 else best_of(measured, True)  # too few cells for the law
    return {"cell": cell, "flops": flops, "hours": hours}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sweep", default="laws_real_ml1m")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--boot", type=int, default=200)
    ap.add_argument("--out", default=None, help="default: results/reference/adaptive_real/<sweep>.json")
    ap.add_argument("--md", action="store_true", help="only rewrite the .md from the .json record")
    args = ap.parse_args()
    args.out = args.out or str(ARCHIVE / f"{args.sweep}.json")
    if args.md:
        write_md(json.loads(Path(args.out).read_text()), Path(args.out).with_suffix(".md"))
        return
    t0, load = time.time(), os.getloadavg()[0]
    data = collect(args.sweep)
    r = Replay(data)
    n_missing = int((~r.present).sum())
    best = best_of(r.value, True)
    full_flops, full_hours = r.full_cost()
    law_full = r.designer(0, 200).update(dict(r.value))

    def describe(i: int) -> dict[str, Any]:
        depth, width = r.grid.values[i]
        return {"depth": depth, "width": width, "name": r.cells[i]["name"], "value": r.value[i],
                "steps_from_best": int(r.grid.steps(best, i)[0]),
                "regret": (r.value[best] - r.value[i]) / r.value[best]}  # fmt: skip

    rows: dict[str, list[dict[str, Any]]] = {"adaptive": [], "adaptive_curves": [], "random_equal": []}
    for seed in range(args.seeds):
        a = adaptive(r, seed, args.boot, curves=False)
        rows["adaptive"].append(a)
        rows["adaptive_curves"].append(adaptive(r, seed, args.boot, curves=True))
        rows["random_equal"].append(random_equal(r, seed, a["flops"]))
        print(f"seed {seed}: " + ", ".join(f"{k} {r.cells[v[-1]['cell']]['name']} {v[-1]['flops'] / full_flops:.0%}"
                                            for k, v in rows.items()), flush=True)  # fmt: skip
    asha_row = asha(r)

    def summary(v: list[dict[str, Any]]) -> dict[str, Any]:
        picks = [describe(x["cell"]) for x in v]
        return {
            "exact": float(np.mean([p["steps_from_best"] == 0 for p in picks])),
            "within_one_step": float(np.mean([p["steps_from_best"] <= 1 for p in picks])),
            "regret_mean": float(np.mean([p["regret"] for p in picks])),
            "regret_max": float(np.max([p["regret"] for p in picks])),
            "compute_mean": float(np.mean([x["flops"] for x in v]) / full_flops),
            "compute_max": float(np.max([x["flops"] for x in v]) / full_flops),
            "hours_mean": float(np.mean([x["hours"] for x in v])),
            "picks": {k: sum(p["name"] == k for p in picks) for k in sorted({p["name"] for p in picks})},
            **({"waves_mean": float(np.mean([x["waves"] for x in v])),
                "cells_mean": float(np.mean([x["measured"] for x in v])),
                "stopped_mean": float(np.mean([len(x.get("stopped", [])) for x in v])),
                "edge": [x["edge"] for x in v if x["edge"]][:1]} if "waves" in v[0] else {}),
        }  # fmt: skip

    report = {
        "sweep": args.sweep, "seeds": args.seeds, "boot": args.boot, "machine": machine(), "load_1min": load,
        "load_end_1min": os.getloadavg()[0],
        "cells": len(r.cells), "missing_cells": n_missing, "full_flops": full_flops, "full_hours": full_hours,
        "measured_best": describe(best), "law_on_full_grid": describe(law_full.decision),
        "strategies": {k: summary(v) for k, v in rows.items()},
        "asha": {**describe(asha_row["cell"]), "compute": asha_row["flops"] / full_flops, "hours": asha_row["hours"],
                 "trained_to_end": asha_row["trained_to_end"]},
        "values": {r.cells[i]["name"]: r.value[i] for i in sorted(r.cells)},
    }  # fmt: skip
    report["wall_s"] = time.time() - t0
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    write_md(report, Path(args.out).with_suffix(".md"))
    print(Path(args.out).with_suffix(".md").read_text())


def write_md(rep: dict[str, Any], path: Path) -> None:
    b, lf = rep["measured_best"], rep["law_on_full_grid"]
    lines = [
        f"# Adaptive sweeps on a real grid: {rep['sweep']}",
        "",
        f"Command: `.venv/bin/python bench/adaptive_real.py --sweep {rep['sweep']} --seeds {rep['seeds']} "
        f"--boot {rep['boot']}` ({rep['wall_s'] / 60:.0f} min, load {rep['load_1min']:.1f} at the start"
        + (f", {rep['load_end_1min']:.1f} at the end" if "load_end_1min" in rep else "") + "). Replayed on the "
        f"{rep['cells']} cells the full sweep measured"
        + (f" ({rep['missing_cells']} cell(s) of the grid not measured yet: left out of every strategy)"
           if rep["missing_cells"] else "") + "; see the script's docstring for the method.",
        "",
        f"Full grid: {rep['full_flops']:.3g} training FLOPs, {rep['full_hours']:.1f} training hours. Measured best: "
        f"{b['name']} (test NDCG@10 {b['value']:.4f}). The Performance Law fitted to every cell picks {lf['name']} "
        f"({lf['value']:.4f}, regret {lf['regret']:.1%}).",
        "",
        "| strategy | best cell exactly | within one grid step | regret (mean / max) | compute (mean / max share "
        "of the grid) | training hours (mean) | cells measured (mean) |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    names = {
        "adaptive": "adaptive",
        "adaptive_curves": "adaptive + curves",
        "random_equal": "random, adaptive's compute",
    }
    for k, label in names.items():
        s = rep["strategies"][k]
        cells = f"{s['cells_mean']:.1f}" if "cells_mean" in s else "-"
        lines.append(f"| {label} | {s['exact']:.0%} | {s['within_one_step']:.0%} | {s['regret_mean']:.1%} / "
                     f"{s['regret_max']:.1%} | {s['compute_mean']:.1%} / {s['compute_max']:.1%} | "
                     f"{s['hours_mean']:.2f} | {cells} |")  # fmt: skip
    a = rep["asha"]
    lines.append(f"| Ray Tune's ASHA (one run, deterministic) | {a['steps_from_best'] == 0:.0%} | "
                 f"{a['steps_from_best'] <= 1:.0%} | {a['regret']:.1%} | {a['compute']:.1%} | {a['hours']:.2f} | "
                 f"{rep['cells']} started, {a['trained_to_end']} to the end |")  # fmt: skip
    lines += ["", "Picks over the seeds: " + "; ".join(
        f"{names[k]}: " + ", ".join(f"{n} x{c}" for n, c in s["picks"].items()) for k, s in rep["strategies"].items()
    ) + f"; ASHA: {a['name']}.", ""]  # fmt: skip
    s = rep["strategies"]["adaptive_curves"]
    lines += [f"Curves: {s['stopped_mean']:.1f} cell(s) stopped per design on average.", ""]
    edge = rep["strategies"]["adaptive"].get("edge")
    if edge:
        lines += [
            f"The design's decision sat on the grid's edge with the law improving beyond it: {edge[0]}.",
            "",
        ]
    same = rep["strategies"]["adaptive"]["picks"].get(lf["name"], 0)
    lines += [f"The adaptive design reached the full grid's law decision ({lf['name']}) in {same} of {rep['seeds']} "
              f"designs: it finds what the law fitted to every cell would say, with less compute; when that "
              f"decision is off (regret {lf['regret']:.1%} here) the fault is the law's fit, which no design "
              "can correct. ASHA needs no law: it ranks the measured validation metric directly.", ""]  # fmt: skip
    cells = collect(rep["sweep"])["cells"]
    best_cell = next((c for c in cells if c["name"] == b["name"]), None)
    if best_cell and best_cell.get("hr10") is not None:
        n, hr = best_cell["test_users"], best_cell["hr10"]
        se = (hr * (1 - hr) / n) ** 0.5
        near = sorted(k for k, v in rep["values"].items() if b["value"] - v < 0.01 * b["value"])
        if len(near) > 1:
            verdict = (f"Within 1% of the measured best's NDCG@10: {', '.join(near)}; which of these is the best is "
                       "decided by noise.")  # fmt: skip
        else:
            name, v = max(((k, x) for k, x in rep["values"].items() if k != b["name"]), key=lambda kv: kv[1])
            verdict = f"No other cell is within 1% of the measured best's NDCG@10 (the next, {name}, is {1 - v / b['value']:.1%} below)."
        lines += [f"Measurement noise: {n} test users; the binomial standard error of the best cell's HR@10 "
                  f"({hr:.4f}) is {se:.4f}, {se / hr:.0%} of it. {verdict}", ""]  # fmt: skip
    lines += [
        "Measured test NDCG@10 per cell: " + ", ".join(f"{n} {v:.4f}" for n, v in rep["values"].items()),
        "",
    ]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
