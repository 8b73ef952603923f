"""One writer per results directory, checkpoints that cannot run code, a local Ray on loopback only,
and a disk-full trial recorded as failed with the file it could not write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
from sweep_helpers import BASE, cell_ids, mlflow_runs, start_sweep, sweep, write_spec

from scalelab.config import RunConfig
from scalelab.errors import CheckpointMismatch, UserError
from scalelab.training import checkpoint as ckpt

# --------------------------------------------------------------------------- one writer per directory


def hold_lock(root: Path) -> subprocess.Popen[str]:
    """Another process holding `root`'s results lock (for up to 2 minutes); returns once it holds it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import time
            from pathlib import Path
            from scalelab.sweeps.lock import ResultsLock
            with ResultsLock(Path({str(root)!r})):
                print("held", flush=True)
                time.sleep(120)
        """)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_sweep_into_a_directory_another_is_writing_is_refused_on_one_line(tmp_path: Path) -> None:
    """The sweep refuses before anything runs, naming the process that holds the results directory."""
    spec = write_spec(tmp_path, "held")
    from scalelab.sweeps.spec import load_sweep

    root = load_sweep(spec)[0].results_dir()
    root.mkdir(parents=True, exist_ok=True)
    holder = hold_lock(root)
    try:
        p = sweep(str(spec))
    finally:
        holder.kill()
        holder.wait()
    assert p.returncode == 2, p.stderr[-2000:]
    assert f"another sweep is writing here (PID {holder.pid} on " in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
    assert not (root / "trials").exists()  # nothing ran


@pytest.mark.slow  # opt-in (make test-all): the refusal above covers the lock in the default run
def test_two_concurrent_sweeps_into_one_directory_run_once(tmp_path: Path) -> None:
    """Both started at once on a fresh directory and a fresh MLflow store: exactly one runs the cells,
    the other is refused at once naming the holder; MLflow holds one parent and one child per cell."""
    spec = write_spec(tmp_path, "twice")
    procs = [start_sweep(str(spec)) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], [o[1][-2000:] for o in outs]
    refused = next(o[1] for p, o in zip(procs, outs, strict=True) if p.returncode == 2)
    assert "another sweep is writing here (PID" in refused and " on " in refused, refused
    assert len(refused.strip().splitlines()) == 1 and "Traceback" not in refused
    runs = mlflow_runs(tmp_path, "twice")
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) - len(children) == 1 and len(children) == 4
    table = pd.read_csv(tmp_path / "twice" / "runs.csv")
    assert len(table) == 4 and (table["status"] == "finished").all()
    assert not list((tmp_path / "twice").glob(".*.tmp")) and not list((tmp_path / "twice").glob("*.tmp"))


@pytest.mark.slow  # opt-in (make test-all): keeps the default run under 10 minutes
def test_two_sweeps_create_one_fresh_mlflow_store_at_once(tmp_path: Path) -> None:
    """Different results directories, one new sqlite store: both initialise it safely."""
    one = {"grid": {"model.depth": [1], "model.width": [8]}}
    specs = [write_spec(tmp_path, f"s{i}", **one) for i in range(2)]
    procs = [start_sweep(str(s)) for s in specs]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    for i in range(2):
        assert len([r for r in mlflow_runs(tmp_path, f"s{i}") if "mlflow.parentRunId" in r.data.tags]) == 1


def test_lock_is_released_when_the_holder_dies(tmp_path: Path) -> None:
    """flock: a SIGKILLed holder leaves no stale lock."""
    from scalelab.sweeps.lock import ResultsLock

    holder = hold_lock(tmp_path)
    with (
        pytest.raises(UserError, match=rf"another sweep is writing here \(PID {holder.pid} on "),
        ResultsLock(tmp_path),
    ):
        pass
    holder.kill()
    holder.wait()
    with ResultsLock(tmp_path):
        pass


# ----------------------------------------------------------------------------------- checkpoints


class _Payload:
    """Unpickling this object creates a file: proof that the pickle ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _config() -> RunConfig:
    return RunConfig.model_validate({**BASE, "data": {**BASE["data"]}})


def test_a_crafted_pickle_is_refused_without_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ckpt.TRUST_ENV, raising=False)
    fp = ckpt.fingerprint(_config())
    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pt"
    torch.save({"fingerprint": fp, "model": _Payload(marker)}, path)
    # 1. no checkpoint.json (as a format-1 checkpoint): refused before opening, names the opt-in
    with pytest.raises(UserError, match="SCALELAB_TRUST_CHECKPOINTS=1"):
        ckpt.load(path, torch.device("cpu"), fp)
    assert not marker.exists()
    # 2. a checkpoint.json claiming the right fingerprint: weights_only refuses the object
    (tmp_path / "checkpoint.json").write_text(json.dumps({"format": 2, "fingerprint": fp}))
    with pytest.raises(UserError, match="refused to load: not a plain-tensor checkpoint"):
        ckpt.load(path, torch.device("cpu"), fp)
    assert not marker.exists()
    # 3. another configuration's fingerprint: refused before torch.load is even called
    (tmp_path / "checkpoint.json").write_text(json.dumps({"format": 2, "fingerprint": "0" * 16}))

    def forbidden(*a: object, **k: object) -> None:
        raise AssertionError("torch.load called before the fingerprint check")

    monkeypatch.setattr(torch, "load", forbidden)
    with pytest.raises(CheckpointMismatch):
        ckpt.load(path, torch.device("cpu"), fp)


def test_format_1_checkpoints_load_with_the_opt_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    fp = ckpt.fingerprint(_config())
    path = tmp_path / "checkpoint.pt"
    old = {"fingerprint": fp, "epoch": 3, "rng": {"numpy": np.random.get_state()}}  # needs a full pickle
    torch.save(old, path)
    monkeypatch.delenv(ckpt.TRUST_ENV, raising=False)
    with pytest.raises(UserError):
        ckpt.load(path, torch.device("cpu"), fp)
    monkeypatch.setenv(ckpt.TRUST_ENV, "1")
    assert ckpt.load(path, torch.device("cpu"), fp)["epoch"] == 3
    with pytest.raises(CheckpointMismatch):
        ckpt.load(path, torch.device("cpu"), "f" * 16)


def test_train_refuses_a_crafted_checkpoint_on_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    marker = tmp_path / "pwned"
    torch.save({"model": _Payload(marker)}, run / "checkpoint.pt")
    args = ["--set", "data.synthetic.num_users=200", "--set", "data.synthetic.num_items=50",
            "--set", "train.epochs=1", "--set", "model.width=8", "--set", "model.depth=1"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != ckpt.TRUST_ENV}
    p = subprocess.run(
        [sys.executable, "-m", "scalelab", "train", *args, "--no-track", "-o", str(run)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "checkpoint.pt" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ ray


def test_local_ray_listens_on_loopback_only() -> None:
    """Every listening socket of the sweep's private Ray (GCS, raylet, workers) is on 127.0.0.1, and
    Ray's token authentication is on."""
    script = textwrap.dedent("""
        import json, os, psutil, ray
        from scalelab.sweeps.runner import _ray_init
        _ray_init(None, num_cpus=1)
        @ray.remote
        def f():
            return os.getpid()
        ray.get(f.remote())  # a worker process is up too
        me = psutil.Process()
        procs = [me, *me.children(recursive=True)]
        pids = {p.pid for p in procs}
        listening = [
            {"ip": c.laddr.ip, "port": c.laddr.port, "pid": c.pid}
            for c in psutil.net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.pid in pids
        ]
        print(json.dumps({"listening": listening, "names": sorted({p.name() for p in procs}),
                          "auth": os.environ.get("RAY_AUTH_MODE")}))
        ray.shutdown()
    """)
    env = {
        k: v for k, v in os.environ.items() if k not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_AUTH_MODE")
    }
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    found = json.loads(p.stdout.strip().splitlines()[-1])
    names = found["names"]
    assert any("gcs_server" in n for n in names) and any("raylet" in n for n in names), names
    assert len(found["listening"]) >= 3, found
    exposed = [s for s in found["listening"] if s["ip"] not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")]
    assert not exposed, exposed
    assert found["auth"] == "token"  # Ray's token authentication is on for the local Ray too


# ------------------------------------------------------------------------------------ disk full


@pytest.mark.slow  # opt-in (make test-all): keeps the default run under 10 minutes
def test_disk_full_in_a_sweep_fails_the_cell_naming_the_file(tmp_path: Path) -> None:
    spec = write_spec(
        tmp_path, "full", grid={"model.depth": [1], "model.width": [8, 16]},
        base={**BASE, "train": {**BASE["train"], "epochs": 3}},
    )  # fmt: skip
    ids = cell_ids(spec)
    p = sweep(str(spec), env={"SCALELAB_FAULTS": f"enospc@{ids[0]}"})
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    table = pd.read_csv(tmp_path / "full" / "runs.csv").set_index("cell_id")
    assert table.loc[ids[0], "status"] == "failed" and table.loc[ids[1], "status"] == "finished"
    reason = table.loc[ids[0], "failure_reason"]
    assert "No space left on device" in reason and f"{ids[0]}/checkpoint.pt" in reason, reason
    assert f"{ids[0]}/checkpoint.pt" in p.stderr


def test_an_interrupted_attempt_counts_in_the_wall_time(tmp_path: Path) -> None:
    """The driver died while a trial ran: the next driver adds that attempt's time, up to the last
    file the trial wrote, instead of losing it."""
    from scalelab.sweeps.results import close_interrupted_attempt

    trial = tmp_path / "trials" / "abc"
    trial.mkdir(parents=True)
    (trial / "checkpoint.pt").write_bytes(b"x")
    os.utime(trial / "checkpoint.pt", (1_000_100.0, 1_000_100.0))
    st = {"status": "running", "wall_time_s": 50.0, "attempt_started": 1_000_000.0}
    close_interrupted_attempt(tmp_path, "abc", st)
    assert st == {"status": "running", "wall_time_s": 150.0}
    close_interrupted_attempt(tmp_path, "abc", st)  # once only
    assert st["wall_time_s"] == 150.0
