"""The command line as a user runs it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_file


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scalelab", *args], capture_output=True, text=True, timeout=300
    )


def assert_one_line_error(p: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_version_and_help() -> None:
    p = run("--version")
    assert p.returncode == 0 and p.stdout.startswith("scalelab ")
    p = run("--help")
    assert p.returncode == 0 and "data" in p.stdout and "config" in p.stdout
    p = run("data", "describe", "--help")
    assert p.returncode == 0 and "ApEn" in p.stdout


def test_help_text_wraps_to_the_terminal() -> None:
    """At 80 columns a description paragraph fills its lines: no short line inside a paragraph (the
    source's own line breaks would leave one wherever a source line is longer than the terminal)."""
    for cmd in (["sweep"], ["data", "describe"]):
        p = subprocess.run(
            [sys.executable, "-m", "scalelab", *cmd, "--help"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "80", "TERM": "dumb"},
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        text = p.stdout.split("Examples:")[0].split("Usage:")[1]
        lines = [ln.strip() for ln in text.splitlines()][1:]
        for ln, nxt in itertools.pairwise(lines):
            assert not (ln and nxt and len(ln) < 50), (cmd, ln, nxt)


@pytest.mark.parametrize(
    ("rel", "expect"),
    [("ml-1m/interactions.tsv.gz", (6040, 3416, 999_611)), ("ml-100k/u.data", (943, 1682, 100_000))],
)
def test_describe_real_datasets(rel: str, expect: tuple[int, int, int]) -> None:
    p = run("data", "describe", str(shared_file(rel)), "--json", "--m", "1", "--m", "2")
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert (s["users"], s["items"], s["interactions"]) == expect
    assert [a["m"] for a in s["apen"]] == [1, 2]
    assert s["tokens"]["train_targets"] > 0


def test_describe_table_output() -> None:
    p = run("data", "describe", str(shared_file("ml-100k/u.data")))
    assert p.returncode == 0 and "943" in p.stdout and "1,682" in p.stdout and "100,000" in p.stdout


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    assert_one_line_error(
        run("data", "describe", str(tmp_path / "missing.tsv")), "missing.tsv", "no such file"
    )

    wrong = tmp_path / "u.data"
    wrong.write_text("1,2,5,881250949\n")
    assert_one_line_error(run("data", "describe", str(wrong)), "u.data:1", "comma-separated")

    ts = tmp_path / "t.tsv"
    ts.write_text("user_id\titem_id\ttimestamp\n1\t2\t3\n1\t3\t4\n1\t4\tlater\n")
    assert_one_line_error(run("data", "describe", str(ts)), "t.tsv:4", "timestamp is not a number")

    assert_one_line_error(
        run("data", "describe", str(shared_file("ml-100k/u.data")), "--set", "data.min_item_count=100000"),
        "empty after",
    )

    cfg = tmp_path / "c.yaml"
    cfg.write_text("model:\n  family: hstu\n  layers: 4\n")
    assert_one_line_error(run("config", "check", str(cfg)), f"{cfg}: model.layers: unknown key")
    assert_one_line_error(run("data", "describe", "synthetic", "--config", str(cfg)), "model.layers")


def test_usage_error_exits_non_zero_without_traceback() -> None:
    p = run("data", "describe")
    assert p.returncode != 0 and "Traceback" not in p.stderr and "Missing argument" in p.stderr


def test_config_show_applies_overrides() -> None:
    p = run("config", "show", "--set", "model.depth=8", "--set", "eval.ks=[1,5]")
    assert p.returncode == 0
    assert "depth: 8" in p.stdout and "- 5" in p.stdout


def test_synth_then_describe_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "syn.tsv.gz"
    p = run("data", "synth", str(out), "--set", "data.synthetic.num_users=100")
    assert p.returncode == 0, p.stderr
    s = json.loads(run("data", "describe", str(out), "--json").stdout)
    assert s["users"] == 100


def test_prepare_reports_cache() -> None:
    p = run("data", "prepare", "--set", "data.synthetic.num_users=100")
    assert p.returncode == 0 and "built" in p.stdout
    p = run("data", "prepare", "--set", "data.synthetic.num_users=100")
    assert p.returncode == 0 and "cached" in p.stdout


def test_train_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    small = ["--set", "data.synthetic.num_users=50", "--set", "train.epochs=1", "--set", "model.width=8",
             "--set", "data.max_seq_len=10", "--no-track"]  # fmt: skip
    import torch

    if not torch.cuda.is_available():
        assert_one_line_error(
            run("train", *small, "--set", "train.device=cuda", "-o", str(tmp_path / "a")), "CUDA"
        )
    assert_one_line_error(run("train", *small, "--set", "train.device=tpu:0"), "train.device: unknown device")
    assert_one_line_error(run("train", *small, "--set", "train.lr=-1"), "train.lr")
    ok = run("train", *small, "-o", str(tmp_path / "r"))
    assert ok.returncode == 0, ok.stderr
    assert "hr@10" in ok.stdout
    assert_one_line_error(
        run("train", *small, "--set", "model.width=16", "-o", str(tmp_path / "r")),
        "checkpoint of a different configuration",
    )


def test_fit_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    import pandas as pd

    rows = [{"depth": d, "width": w, "status": "finished", "final_ndcg@10": 0.1 + 0.01 * d + 0.001 * w}
            for d in (1, 2, 4) for w in (8, 16)]  # fmt: skip
    table = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    common = ["fit", "--runs", str(table), "--no-track", "--bootstrap", "10"]
    assert_one_line_error(run(*common, "--metric", "hr@10"), "no metric 'hr@10'")
    assert_one_line_error(run(*common, "--law", "nope"), "unknown law 'nope'")
    small = tmp_path / "small.csv"
    pd.DataFrame(rows[:3]).to_csv(small, index=False)
    assert_one_line_error(run("fit", "--runs", str(small), "--no-track"), "cannot determine the 5 parameters")
    # non-finite rows are dropped with a warning that counts them, and the fit goes on
    bad = pd.DataFrame(rows)
    bad.loc[0, "final_ndcg@10"] = float("nan")
    bad.loc[1, "final_ndcg@10"] = float("inf")
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    p = run("fit", "--runs", str(path), "--no-track", "--law", "power", "--x", "depth", "--bootstrap", "20",
            "--holdout", "none")  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "dropped 2 row(s)" in p.stderr
    assert (tmp_path / "fits" / "power-ndcg_at_10.json").exists()
