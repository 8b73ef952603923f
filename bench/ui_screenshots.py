"""Screenshots of the report and the MLflow dashboard, as a new user sees them (headless Chromium).

Runs a small synthetic sweep (two families x three widths, into a temporary directory), fits the
Performance Law and a power law, writes the report, serves `scalelab ui` on the sweep's store, and
saves under results/reference/screenshots/: the report (top and the fitted-law section), the
experiment's runs page, one trial's page.

    .venv/bin/python bench/ui_screenshots.py
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "reference" / "screenshots"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def scalelab(*args: str, cwd: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "scalelab", *args], cwd=cwd, capture_output=True, text=True, timeout=900
    )
    if p.returncode:
        raise SystemExit(f"scalelab {' '.join(args)} failed: {p.stderr[-2000:]}")


def shot(url: str, path: Path, size: str = "1400,1000", budget: int = 20000) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--window-size={size}", f"--virtual-time-budget={budget}",
                        f"--screenshot={path}", url], capture_output=True, timeout=180)  # fmt: skip
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size:,} bytes")


def main() -> None:
    if CHROMIUM is None:
        raise SystemExit("needs chromium (apt-get install chromium)")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        spec = {
            "name": "screens",
            "base": {"data": {"synthetic": {"num_users": 400, "num_items": 80, "mean_seq_len": 16}, "max_seq_len": 16},
                     "model": {"heads": 1}, "train": {"epochs": 4, "num_negatives": 16}, "eval": {"ks": [10]}},
            "grid": {"model.family": ["hstu", "sasrec"], "model.width": [8, 16, 32]},
            "tracking": {"experiment": "screens"},
        }  # fmt: skip
        (work / "screens.yaml").write_text(yaml.safe_dump(spec))
        scalelab("sweep", "screens.yaml", cwd=work)
        scalelab(
            "fit", "--sweep", "screens", "--law", "power", "--x", "params", "--bootstrap", "200", cwd=work
        )
        scalelab("report", "screens", cwd=work)
        report = work / "results" / "screens" / "report" / "report.html"
        shot(report.as_uri(), OUT / "report_top.png", "1200,1600")
        shot(report.as_uri(), OUT / "report_full.png", "1200,9000")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        ui = subprocess.Popen([sys.executable, "-m", "scalelab", "ui", "--port", str(port)], cwd=work,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(240):
                try:
                    urllib.request.urlopen(f"{base}/health", timeout=2)
                    break
                except OSError:
                    time.sleep(0.5)
            from mlflow.tracking import MlflowClient

            client = MlflowClient(f"sqlite:///{work / 'results' / 'mlflow.db'}")
            exp = client.get_experiment_by_name("screens")
            trial = client.search_runs(
                [exp.experiment_id], filter_string="tags.kind = 'trial'", max_results=1
            )[0]
            q = "?workflowType=machine_learning"  # the "Model training" view (`scalelab ui` prints this URL)
            shot(f"{base}/#/experiments/{exp.experiment_id}{q}", OUT / "mlflow_experiment.png", budget=40000)
            shot(f"{base}/#/experiments/{exp.experiment_id}/runs/{trial.info.run_id}{q}", OUT / "mlflow_trial.png",
                 budget=40000)  # fmt: skip
        finally:
            import os
            import signal

            os.killpg(ui.pid, signal.SIGTERM)
            ui.wait(timeout=30)


if __name__ == "__main__":
    main()
