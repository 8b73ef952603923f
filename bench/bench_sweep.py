"""Scheduling overhead of a sweep: an 8-trial synthetic sweep on a local Ray, 2 trials at a time.

Two figures: the extra wall time per trial, (wall - sum of the trials' own run times / concurrency)
/ trials, which the < 2 s target refers to; and the stricter idle worker time per trial,
(wall x concurrency - sum of own run times) / trials (= concurrency x the first). A trial's own run
time is the time `train_run` spent (data, model, epochs, evaluations), read from its summary; the
reference, sum / concurrency, is what a scheduler without overhead would take. What is left is Ray
start-up, trial process start-up (Python, torch import), Tune bookkeeping, checkpoint reporting and
the driver's MLflow logging.

    python bench/bench_sweep.py
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_record

from scalelab.sweeps.runner import run_sweep
from scalelab.sweeps.spec import load_sweep

CONCURRENCY = 2


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    spec = {
        "name": "bench_overhead",
        "base": {
            "data": {
                "synthetic": {"num_users": 1000, "num_items": 100, "mean_seq_len": 20},
                "max_seq_len": 20,
            },
            "model": {"family": "hstu", "heads": 1},
            "train": {"epochs": 3, "batch_size": 64, "num_negatives": 16},
            "eval": {"ks": [10]},
        },
        "grid": {"model.depth": [1, 2, 3, 4], "model.width": [16, 32]},
        "resources": {"cpu": 1},
        "max_concurrent": CONCURRENCY,
        "output_dir": str(tmp / "sweep"),
        "tracking": {"mlflow_uri": f"sqlite:///{tmp / 'mlflow.db'}", "experiment": "bench"},
    }
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    s, cells = load_sweep(path)
    t0 = time.perf_counter()
    outcome = run_sweep(s, cells, str(path))
    wall = time.perf_counter() - t0
    runs = [json.loads((tmp / "sweep" / "trials" / c.cell_id / "summary.json").read_text()) for c in cells]
    own = sum(r["run_time_s"] for r in runs)
    ideal = own / CONCURRENCY
    per_trial = (wall * CONCURRENCY - own) / len(cells)
    extra_wall = (wall - ideal) / len(cells)
    print(
        f"8 trials, {CONCURRENCY} at a time: wall {wall:.1f} s; trials' own time {own:.1f} s "
        f"(ideal wall {ideal:.1f} s); ratio wall/ideal {wall / ideal:.2f}; extra wall {extra_wall:.2f} s "
        f"per trial; idle worker time {per_trial:.2f} s per trial"
    )
    assert outcome.counts.done == len(cells)
    rec = write_record(
        "bench_sweep",
        {
            "command": "python bench/bench_sweep.py",
            "trials": len(cells),
            "concurrency": CONCURRENCY,
            "wall_s": wall,
            "trials_own_s": own,
            "ideal_wall_s": ideal,
            "ratio": wall / ideal,
            "extra_wall_per_trial_s": extra_wall,
            "overhead_per_trial_s": per_trial,
            "machine": machine(),
        },
    )
    print(f"written {rec}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
