"""What a sweep prints: a live per-trial table on a terminal (checked under a real pseudo-terminal),
one line per trial event when piped, the results table at the end, `scalelab runs`, `--name`."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_helpers import cell_ids, sweep, write_spec

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


@pytest.mark.slow  # ~35 s; opt-in (make test-all) to keep the default run under 10 minutes
def test_piped_sweep_prints_one_line_per_trial_event_and_the_full_results_table(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "piped")
    p = sweep(str(spec))
    assert p.returncode == 0, p.stderr
    ids = cell_ids(spec)
    finished = [ln for ln in p.stdout.splitlines() if re.match(r"\d\d:\d\d:\d\d finished ", ln)]
    started = [ln for ln in p.stdout.splitlines() if re.match(r"\d\d:\d\d:\d\d started ", ln)]
    assert len(finished) == 4 and len(started) == 4, p.stdout
    assert all(any(cid in ln for ln in finished) for cid in ids)
    assert all("valid ndcg@10" in ln for ln in finished)
    # the results table: every name in full, no ellipsis, whatever the (absent) terminal width
    header = next(ln for ln in p.stdout.splitlines() if ln.split()[:2] == ["name", "status"])
    assert "test ndcg@10" in header and "…" not in p.stdout
    for name in ("hstu-L1-D8-f1.00-s42", "hstu-L2-D16-f1.00-s42"):
        assert any(ln.strip().startswith(name) and "finished" in ln for ln in p.stdout.splitlines())
    assert f"runs table: {tmp_path / 'piped' / 'runs.csv'}" in p.stdout  # one unbroken line
    # the disk preflight's estimate is within 2x of what the trials wrote
    from scalelab.sweeps import runner
    from scalelab.sweeps.spec import load_sweep

    sweep_spec, cells = load_sweep(spec)
    estimate = sum(c.disk_bytes for c in runner.plan(sweep_spec, runner.absolute_data_paths(cells)))
    written = runner.written_bytes(tmp_path / "piped")
    assert 0.5 <= estimate / written <= 2.0, (estimate, written)

    runs = subprocess.run([sys.executable, "-m", "scalelab", "runs", str(tmp_path / "piped")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert runs.returncode == 0 and len([ln for ln in runs.stdout.splitlines() if "finished" in ln]) == 4
    as_csv = subprocess.run([sys.executable, "-m", "scalelab", "runs", str(tmp_path / "piped"), "--csv", "--all"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert (
        as_csv.stdout.splitlines()[0].startswith("cell_id,name,status")
        and len(as_csv.stdout.splitlines()) == 5
    )


@pytest.mark.slow  # opt-in (make test-all): the piped test above covers the default run's output
def test_live_table_on_a_terminal(tmp_path: Path) -> None:
    """Under a pseudo-terminal the sweep draws the per-trial table: trial, state, epoch, loss, the
    monitored metric named with its split, elapsed; and prints the results table at the end."""
    spec = write_spec(tmp_path, "tty", base={
        "data": {"synthetic": {"num_users": 400, "num_items": 60, "mean_seq_len": 20}, "max_seq_len": 20},
        "model": {"family": "hstu", "heads": 1}, "train": {"epochs": 6, "batch_size": 32, "num_negatives": 8},
        "eval": {"ks": [10]}})  # fmt: skip
    master, slave = os.openpty()
    env = {**os.environ, "COLUMNS": "160", "LINES": "50", "TERM": "xterm-256color"}
    proc = subprocess.Popen([sys.executable, "-m", "scalelab", "sweep", str(spec)], stdin=slave, stdout=slave,
                            stderr=slave, env=env, close_fds=True)  # fmt: skip
    os.close(slave)
    chunks = []
    deadline = time.time() + 600
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed: the process ended
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(master)
    text = ANSI.sub("", b"".join(chunks).decode(errors="replace"))
    assert proc.returncode == 0, text[-3000:]
    assert re.search(r"trial\s+state\s+epoch\s+loss\s+valid ndcg@10\s+elapsed", text), text[-3000:]
    assert re.search(r"hstu-L\d-D\d+-f1\.00-s42\s+running\s+\d+/6", text), text[-3000:]
    assert re.search(r"\d/4 done .* running .* pending", text)
    assert "test ndcg@10" in text and "tty: 4 finished" in text


@pytest.mark.slow  # opt-in (make test-all): keeps the default run under 10 minutes
def test_name_renames_the_sweep_and_set_name_is_refused(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "orig", grid={"model.depth": [1], "model.width": [8]}, output_dir=None)
    spec.write_text(spec.read_text().replace("output_dir: null\n", ""))
    cwd = tmp_path / "work"
    cwd.mkdir()
    p = subprocess.run([sys.executable, "-m", "scalelab", "sweep", str(spec), "--name", "renamed", "--no-track"],
                       capture_output=True, text=True, timeout=600, cwd=cwd)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert (cwd / "results" / "renamed" / "runs.csv").exists() and not (cwd / "results" / "orig").exists()
    bad = sweep(str(spec), "--set", "name=q2", "--dry-run")
    assert bad.returncode == 2 and "use --name" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    worse = sweep(str(spec), "--name", "../escape", "--dry-run")
    assert worse.returncode == 2 and "name" in worse.stderr and "Traceback" not in worse.stderr
