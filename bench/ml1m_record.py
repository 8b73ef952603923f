"""Write results/reference/ml-1m.md (and its learning-curve plot) from the reproduction runs.

Reads results/reproduction/ml1m-*/ (summary.json when a run has finished, else its checkpoint),
so it can be re-run at any time while `make reproduce-ml1m` is in progress.

    python bench/ml1m_record.py
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "results" / "reproduction"
OUT = ROOT / "results" / "reference"
PUBLISHED = {"hstu": (0.3097, 0.1720), "sasrec": (0.2853, 0.1603), "hstu_large": (0.3294, 0.1893),
             "fuxi_alpha": (0.3359, 0.1934)}  # fmt: skip


def load(run: Path) -> dict | None:
    if (run / "summary.json").exists():
        s = json.loads((run / "summary.json").read_text())
        return {
            "status": s["status"],
            "history": s["history"],
            "epochs": s["epochs_run"],
            "device": s["device"],
        }
    if (run / "checkpoint.pt").exists():
        c = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
        return {"status": "in progress", "history": c["history"], "epochs": c["epoch"], "device": "cpu"}
    return None


def main() -> None:
    rows, curves = [], {}
    for run in sorted(RUNS.glob("ml1m-*")):
        model = run.name.removeprefix("ml1m-")
        info = load(run)
        if info is None:
            continue
        evals = [h for h in info["history"] if "test_hr@10" in h]
        last = evals[-1] if evals else {}
        times = [h["epoch_time_s"] for h in info["history"]]
        pub = PUBLISHED.get(model, (float("nan"), float("nan")))
        rows.append((model, info, last, pub, sorted(times)[len(times) // 2] if times else float("nan")))
        curves[model] = [(h["epoch"], h["test_hr@10"], h["test_ndcg@10"]) for h in evals]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for model, pts in curves.items():
        if not pts:
            continue
        e, hr, nd = zip(*pts, strict=True)
        axes[0].plot(e, hr, marker=".", label=model)
        axes[1].plot(e, nd, marker=".", label=model)
        pub = PUBLISHED.get(model)
        if pub:
            axes[0].axhline(pub[0], ls="--", lw=0.8, color=axes[0].lines[-1].get_color())
            axes[1].axhline(pub[1], ls="--", lw=0.8, color=axes[1].lines[-1].get_color())
    for ax, name in zip(axes, ("HR@10", "NDCG@10"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{name} (test, full ranking, history filtered)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("ML-1M learning curves (dashed: published)")
    fig.tight_layout()
    fig.savefig(OUT / "ml-1m_curves.png")
    lines = [
        "# ML-1M reproduction of Meta's published numbers",
        "",
        "Command (resumable; re-running continues every run from its last checkpoint):",
        "`make reproduce-ml1m` = `scalelab train configs/ml1m_<model>.yaml --set data.path=../shared/datasets/ml-1m/interactions.tsv.gz -o results/reproduction/ml1m-<model>`.",
        "Protocol: leave-last-out (no validation split, as Meta), last 200 items, width 50, depth 2, 1 head, dropout 0.2,",
        "128 uniformly sampled negatives per position, temperature 0.05, AdamW lr 1e-3 betas (0.9, 0.98), batch 128,",
        "101 epochs, test evaluated every 5 epochs, full ranking of all 3,416 items with the user's input history filtered.",
        "Data: ../shared/datasets/ml-1m (5-core ML-1M: 6,040 users, 3,416 items, 999,611 interactions; Meta's copy has",
        "3,706 items, so our catalogue is 8% smaller, which makes full-ranking metrics slightly easier).",
        "Machine: this 2-core CPU, shared during the runs with tests and other jobs (epoch times are noisy upper bounds).",
        "",
        "| model | status | epochs | HR@10 | published | diff | NDCG@10 | published | diff | HR@50 | NDCG@50 | HR@200 | NDCG@200 | median epoch time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, info, last, pub, t in rows:
        if not last:
            continue
        lines.append(
            f"| {model} | {info['status']} | {last['epoch']} of 101 | {last['test_hr@10']:.4f} | {pub[0]:.4f} | "
            f"{last['test_hr@10'] - pub[0]:+.4f} | {last['test_ndcg@10']:.4f} | {pub[1]:.4f} | "
            f"{last['test_ndcg@10'] - pub[1]:+.4f} | {last.get('test_hr@50', float('nan')):.4f} | "
            f"{last.get('test_ndcg@50', float('nan')):.4f} | {last.get('test_hr@200', float('nan')):.4f} | "
            f"{last.get('test_ndcg@200', float('nan')):.4f} | {t:.0f} s |"
        )
    lines += ["", "Learning curves (test metrics at each evaluation):", "", "![curves](ml-1m_curves.png)", ""]
    for model, pts in curves.items():
        lines.append(f"- {model}: " + ", ".join(f"e{e} {hr:.4f}/{nd:.4f}" for e, hr, nd in pts))
    (OUT / "ml-1m.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
