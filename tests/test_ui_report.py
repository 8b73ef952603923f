"""The dashboard and the report, checked in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from sweep_helpers import free_port

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def browser(tmp: Path, *args: str, timeout: int = 120) -> str:
    profile = tmp / f"chrome-{time.time_ns()}"
    p = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                       capture_output=True, text=True, timeout=timeout)  # fmt: skip
    return p.stdout


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("ui")
    spec = {
        "name": "uisweep",
        "base": {"data": {"synthetic": {"num_users": 200, "num_items": 50, "mean_seq_len": 12}, "max_seq_len": 12},
                 "model": {"family": "hstu"}, "train": {"epochs": 2, "num_negatives": 8}, "eval": {"ks": [10]}},
        "grid": {"model.family": ["hstu", "sasrec"], "model.width": [8, 16]},
        "output_dir": str(tmp / "uisweep"),
        "tracking": {"mlflow_uri": f"sqlite:///{tmp / 'mlflow.db'}", "experiment": "uisweep"},
    }  # fmt: skip
    path = tmp / "uisweep.yaml"
    path.write_text(yaml.safe_dump(spec))
    p = subprocess.run([sys.executable, "-m", "scalelab", "sweep", str(path)], capture_output=True, text=True,
                       timeout=600)  # fmt: skip
    assert p.returncode == 0, p.stderr
    return tmp


@pytest.mark.slow  # opt-in (make test-all): keeps the default run under 10 minutes
def test_dashboard_shows_the_sweep_in_a_browser(sweep_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    uri = f"sqlite:///{sweep_dir / 'mlflow.db'}"
    server = subprocess.Popen(
        [sys.executable, "-m", "scalelab", "ui", "--port", str(port), "--tracking-uri", uri],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the MLflow UI did not come up")

        def api(path: str, body: dict) -> dict:
            req = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})  # fmt: skip
            return json.loads(urllib.request.urlopen(req, timeout=30).read())

        exps = api("experiments/search", {"max_results": 100})["experiments"]
        exp_id = next(e["experiment_id"] for e in exps if e["name"] == "uisweep")
        runs = api("runs/search", {"experiment_ids": [exp_id], "max_results": 100})["runs"]
        trials = [r for r in runs if any(t["key"] == "mlflow.parentRunId" for t in r["data"].get("tags", []))]
        assert len(trials) == 4
        names = {r["info"]["run_name"] for r in trials}
        assert {"hstu-L2-D8-f1.00-s42", "sasrec-L2-D16-f1.00-s42"} <= names
        hr = {r["info"]["run_name"]: next(m["value"] for m in r["data"]["metrics"] if m["key"] == "hr_at_10")
              for r in trials}  # fmt: skip

        # the experiment's runs page lists the sweep (its trials are nested under it) ...
        dom = browser(
            tmp_path, "--virtual-time-budget=30000", "--dump-dom", f"{base}/#/experiments/{exp_id}/runs"
        )
        assert "uisweep" in dom and "matching runs" in dom, dom[-3000:]
        # ... and each trial's page shows its config-derived name and its hr@10
        for trial in trials[:2]:
            page = f"{base}/#/experiments/{exp_id}/runs/{trial['info']['run_id']}"
            dom = browser(tmp_path, "--virtual-time-budget=30000", "--dump-dom", page)
            text = re.sub(r"<[^>]+>", " ", dom)
            assert trial["info"]["run_name"] in text
            value = hr[trial["info"]["run_name"]]
            assert re.search(rf"hr_at_10\s+{re.escape(str(value))[:5]}", text), text[:3000]
        shot = tmp_path / "experiment.png"
        browser(tmp_path, "--virtual-time-budget=30000", "--window-size=1400,900", f"--screenshot={shot}",
                f"{base}/#/experiments/{exp_id}/runs")  # fmt: skip
        assert shot.exists() and shot.stat().st_size > 10_000
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    deadline = time.time() + 30  # the server's workers exit shortly after
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2)
            time.sleep(0.5)
        except OSError:
            break
    else:
        pytest.fail("the dashboard is still serving after it was stopped")


@pytest.mark.slow  # opt-in (make test-all): the sweep it needs keeps the default run over 10 minutes
def test_report_images_load_in_a_browser(sweep_dir: Path, tmp_path: Path) -> None:
    fit = subprocess.run([sys.executable, "-m", "scalelab", "fit", "--sweep", str(sweep_dir / "uisweep"), "--law",
                          "power", "--x", "params", "--holdout", "none", "--bootstrap", "50", "--no-track"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert fit.returncode == 0, fit.stderr
    p = subprocess.run([sys.executable, "-m", "scalelab", "report", str(sweep_dir / "uisweep")],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr
    report = sweep_dir / "uisweep" / "report" / "report.html"
    pngs = list(report.parent.glob("*.png"))
    assert len(pngs) >= 3
    # a copy of the page that reports, in its title, how many images decoded
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", (
        "<script>window.addEventListener('load', () => {const im = [...document.images];"
        "document.title = 'IMAGES ' + im.filter(i => i.complete && i.naturalWidth > 0).length + '/' + im.length;});"
        "</script></body>")))  # fmt: skip
    dom = browser(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    m = re.search(r"IMAGES (\d+)/(\d+)", dom)
    assert m is not None, dom[:500]
    loaded, total = int(m.group(1)), int(m.group(2))
    assert total >= 3 and loaded == total
    assert "HR@10 / NDCG@10" in dom
    # the paper table, as the browser parsed it: one row per family, one column per size
    tables = parse_tables(dom)
    header, rows = tables[0]
    assert header == ["variant", "width 8", "width 16"], header
    assert [r[0] for r in rows] == ["hstu", "sasrec"], rows
    assert all(re.fullmatch(r"0\.\d{4} / 0\.\d{4}", c) for r in rows for c in r[1:]), rows
    # the fitted law: its plot is in the page, and its parameter table
    assert 'alt="power law on ndcg@10"' in dom
    assert any(h[:3] == ["parameter", "value", "95% interval"] for h, _ in tables[1:])


def parse_tables(dom: str) -> list[tuple[list[str], list[list[str]]]]:
    """(header cells, body rows) of every <table> in the page."""
    from html.parser import HTMLParser

    tables: list[tuple[list[str], list[list[str]]]] = []

    class P(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.cell: list[str] | None = None
            self.row: list[str] = []

        def handle_starttag(self, tag: str, attrs: list) -> None:
            if tag == "table":
                tables.append(([], []))
            elif tag == "tr":
                self.row = []
            elif tag in ("td", "th"):
                self.cell = []

        def handle_endtag(self, tag: str) -> None:
            if tag in ("td", "th") and self.cell is not None:
                self.row.append("".join(self.cell).strip())
                self.cell = None
            elif tag == "tr" and tables:
                header, body = tables[-1]
                if not header:
                    header.extend(self.row)
                else:
                    body.append(self.row)

        def handle_data(self, data: str) -> None:
            if self.cell is not None:
                self.cell.append(data)

    P().feed(dom)
    return tables
