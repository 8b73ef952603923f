"""How right the sweep's ETA is: replayed on the kept runs tables of the real laws sweeps.

For every sweep in results/reference/laws_real/ (cells in their grid order, one at a time, as they
ran) and every point where n cells have finished, the ETA that `scalelab.sweeps.progress.eta_seconds`
gives for the remaining cells is compared with the time they took (epochs run x mean epoch time),
and so is the per-cell reference in the same run: the finished cells' mean duration x cells left
(what the ETA was before it weighed cells by cost). Reported: the mean and worst factor between
estimate and truth, and the median ratio (below 1: an under-estimate). The truth is training time
(evaluations excluded: the kept wall times span sessions). The exponent the ETA shrinks toward (0.5)
was read off the first four of these sweeps, so their replay is not out of sample for it; Amazon Games
(laws_real_games), added after, is.

    python bench/bench_eta.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REFERENCE, write_record

from scalelab.sweeps.progress import Counts, TrialView, eta_seconds

SWEEPS = ("laws_real_ml100k", "laws_real_ml1m", "laws_real_beauty", "laws_real_games", "laws_real_ml1m_data")


def replay(table: pd.DataFrame) -> dict[str, list[float]]:
    """Estimate / truth of the remaining time after each finished cell but the last two."""
    took = (table["mean_epoch_time_s"] * table["epochs_run"]).to_numpy()
    flops = table["flops_per_epoch"].to_numpy()
    targets = table["data_train_targets_per_epoch"].to_numpy()
    epochs = table["epochs_run"].to_numpy().astype(int)
    max_epochs = table["cfg.train.epochs"].to_numpy().astype(int)
    ratios: dict[str, list[float]] = {"eta": [], "per_cell": []}
    now = 1e9
    for n in range(1, len(table) - 1):
        c = Counts(total=len(table))
        for i in range(len(table)):
            if i < n:
                v = TrialView(
                    str(i), max_epochs[i], "finished", epochs[i], started=now - took[i], ended=now, first_epoch=1,
                    flops_per_epoch=flops[i], targets_per_epoch=targets[i],
                )  # fmt: skip
            else:
                v = TrialView(str(i), max_epochs[i], flops_per_epoch=flops[i], targets_per_epoch=targets[i])
            c.trials[str(i)] = v
        truth = took[n:].sum()
        ratios["eta"].append(float(eta_seconds(c, now) or np.nan) / truth)
        ratios["per_cell"].append(float(took[:n].mean() * (len(table) - n)) / truth)
    return ratios


def summary(r: list[float]) -> dict[str, float]:
    f = np.exp(np.abs(np.log(r)))  # the factor between estimate and truth, either way
    return {
        "mean_factor": float(f.mean()),
        "worst_factor": float(f.max()),
        "median_ratio": float(np.median(r)),
    }


def main() -> None:
    rows = []
    for name in SWEEPS:
        path = REFERENCE / "laws_real" / f"{name}.csv"
        if not path.exists():
            continue
        t = pd.read_csv(path, low_memory=False)
        t = t[t["status"] == "finished"].reset_index(drop=True)
        if len(t) < 4:
            continue
        r = replay(t)
        row = {"sweep": name, "cells": len(t), "eta": summary(r["eta"]), "per_cell": summary(r["per_cell"])}
        rows.append(row)
        e, p = row["eta"], row["per_cell"]
        print(
            f"{name:<22} {len(t):>2} cells  ETA: mean factor {e['mean_factor']:.2f}, worst {e['worst_factor']:.2f}, "
            f"median ratio {e['median_ratio']:.2f}   per-cell: {p['mean_factor']:.2f}, {p['worst_factor']:.2f}, "
            f"{p['median_ratio']:.2f}"
        )
    path = write_record(
        "bench_eta",
        {"command": "python bench/bench_eta.py", "sweeps": rows, "when": time.strftime("%Y-%m-%d")},
    )
    print(f"written {path}")


if __name__ == "__main__":
    main()
