"""The bad-input matrix: 100+ broken inputs through the real CLI, each classified.

Every case is a command line (with the broken files it needs) and the token its error must name (the
file, field or line). Outcomes:
- clean: non-zero exit, one line on stderr, naming the token;
- traceback / internal: a Python traceback or an `internal error:` line (a bug);
- wrong: accepted (exit 0) or refused without naming what is wrong.

    .venv/bin/python bench/bad_inputs.py            # prints the table, writes results/reference/bad_inputs.json
    .venv/bin/python -m pytest tests/test_bad_inputs.py   # the same catalogue as a test (all must be clean)

Runs in-process (`scalelab.cli.main`), so 100 cases take about a minute.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / "shared" / "datasets" / "ml-100k" / "u.data"

VALID_BASE = {
    "data": {"synthetic": {"num_users": 60, "num_items": 30, "mean_seq_len": 8}, "max_seq_len": 8},
    "model": {"family": "hstu", "heads": 1},
    "train": {"epochs": 1, "batch_size": 32, "num_negatives": 4},
    "eval": {"ks": [10]},
}


@dataclass
class Case:
    name: str
    kind: str  # spec | config | data | fit | predict | report | cli
    argv: list[str]
    token: str  # what the one-line error must name
    files: dict[str, str | bytes] = field(default_factory=dict)  # relative path -> content


def _spec(name: str, **changes: Any) -> str:
    spec: dict[str, Any] = {
        "name": name,
        "base": json.loads(json.dumps(VALID_BASE)),
        "grid": {"model.depth": [1], "model.width": [8]},
    }
    for key, value in changes.items():
        node = spec
        *parents, last = key.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        if value is _DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return yaml.safe_dump(spec)


_DELETE = object()


def spec_cases() -> list[Case]:
    bad: list[tuple[str, dict[str, Any], str]] = [
        ("unknown top-level key", {"grids": {"model.depth": [1]}}, "grids"),
        ("unknown key in base.model", {"base/model/layers": 4}, "layers"),
        ("unknown key in base.train", {"base/train/learning_rate": 0.1}, "learning_rate"),
        ("unknown key in base.data", {"base/data/paht": "x"}, "paht"),
        ("unknown key in tracking", {"tracking": {"uri": "x"}}, "uri"),
        ("unknown key in resources", {"resources": {"cpus": 1}}, "cpus"),
        ("depth as a string", {"grid": {"model.depth": ["deep"]}}, "model.depth"),
        ("depth zero", {"grid": {"model.depth": [0]}}, "model.depth"),
        ("width negative", {"grid": {"model.width": [-8]}}, "model.width"),
        ("width fractional", {"grid": {"model.width": [8.5]}}, "model.width"),
        ("depth boolean", {"grid": {"model.depth": [True]}}, "model.depth"),
        ("empty axis", {"grid": {"model.depth": []}}, "model.depth"),
        ("axis not a field", {"grid": {"model.colour": [1]}}, "model.colour"),
        ("unknown family", {"base/model/family": "resnet"}, "model.family"),
        ("heads not dividing width", {"base/model/heads": 3}, "heads"),
        ("unknown loss", {"base/train/loss": "hinge"}, "train.loss"),
        ("negative learning rate", {"base/train/lr": -1}, "train.lr"),
        ("epochs zero", {"base/train/epochs": 0}, "train.epochs"),
        ("no cutoffs", {"base/eval/ks": []}, "eval.ks"),
        ("unknown device", {"base/train/device": "tpu"}, "train.device"),
        (
            "grid over 10,000 cells",
            {"grid": {"model.depth": list(range(1, 120)), "model.width": list(range(8, 108))}},
            "cells",
        ),
        ("ftp tracking URI", {"tracking": {"mlflow_uri": "ftp://x/y"}}, "tracking.mlflow_uri"),
        ("http URI without host", {"tracking": {"mlflow_uri": "http://"}}, "tracking.mlflow_uri"),
        ("tracking URI as a number", {"tracking": {"mlflow_uri": 5}}, "tracking.mlflow_uri"),
        ("negative retries", {"retries": -1}, "retries"),
        ("max_concurrent zero", {"max_concurrent": 0}, "max_concurrent"),
        ("data fraction above 1", {"grid": {"data.fraction": [1.5]}}, "data.fraction"),
        (
            "missing data file",
            {"base/data/path": "no/such/file.tsv", "base/data/synthetic": _DELETE},
            "no/such/file.tsv",
        ),
        ("data path is a directory", {"base/data/path": "adir", "base/data/synthetic": _DELETE}, "adir"),
        ("unknown split", {"base/data/split": "random"}, "data.split"),
        (
            "unknown key in adaptive",
            {"grid": {"model.depth": [1, 2, 4], "model.width": [8, 16, 32]}, "adaptive": {"wavez": 3}},
            "wavez",
        ),
        (
            "adaptive stop above 1",
            {"grid": {"model.depth": [1, 2, 4], "model.width": [8, 16, 32]}, "adaptive": {"stop": 2}},
            "adaptive.stop",
        ),
        (
            "adaptive over another axis",
            {"grid": {"model.depth": [1, 2, 4], "train.lr": [0.1, 0.2, 0.3]}, "adaptive": {}},
            "model.width",
        ),
        (
            "adaptive with two values of width",
            {"grid": {"model.depth": [1, 2, 4], "model.width": [8, 16]}, "adaptive": {}},
            "model.width",
        ),
        (
            "adaptive with two budgets",
            {
                "grid": {"model.depth": [1, 2, 4], "model.width": [8, 16, 32]},
                "adaptive": {"budget_hours": 2, "budget_fraction": 0.3},
            },
            "budget_fraction and budget_hours",
        ),
        (
            "adaptive budget_hours not positive",
            {"grid": {"model.depth": [1, 2, 4], "model.width": [8, 16, 32]}, "adaptive": {"budget_hours": 0}},
            "adaptive.budget_hours",
        ),
        (
            "adaptive curves not a boolean",
            {"grid": {"model.depth": [1, 2, 4], "model.width": [8, 16, 32]}, "adaptive": {"curves": "maybe"}},
            "adaptive.curves",
        ),
    ]
    cases = [
        Case(
            f"spec: {what}",
            "spec",
            ["sweep", "s.yaml", "--dry-run"],
            token,
            {"s.yaml": _spec("s", **ch), "adir/x": ""},
        )
        for what, ch, token in bad
    ]
    raw: list[tuple[str, str, str]] = [
        (
            "duplicate top-level key",
            "name: s\ngrid: {model.depth: [1]}\ngrid: {model.width: [8]}\n",
            "duplicate key 'grid'",
        ),
        (
            "duplicate key in a flow mapping",
            "name: s\ngrid: {model.depth: [1], model.depth: [2]}\n",
            "duplicate key 'model.depth'",
        ),
        ("YAML syntax error", "name: s\ngrid: [model.depth: 1\n", "s.yaml"),
        ("tab indentation", "name: s\ngrid:\n\tmodel.depth: [1]\n", "s.yaml"),
        ("top level is a list", "- name: s\n", "mapping"),
        ("empty file", "", "s.yaml"),
        ("binary garbage", "\x00\x01\x02\xff", "s.yaml"),
    ]
    cases += [Case(f"spec: {what}", "spec", ["sweep", "s.yaml", "--dry-run"], token, {"s.yaml": text})
              for what, text, token in raw]  # fmt: skip
    cases.append(Case("spec: missing spec file", "spec", ["sweep", "nope.yaml", "--dry-run"], "nope.yaml"))
    cases.append(
        Case(
            "spec: unknown key refused without --dry-run",
            "spec",
            ["sweep", "s.yaml"],
            "grids",
            {"s.yaml": _spec("s", grids={"a": [1]})},
        )
    )
    cases.append(
        Case(
            "spec: output_dir under a file",
            "spec",
            ["sweep", "s.yaml", "--no-track"],
            "not writable",
            {"s.yaml": _spec("s", output_dir="afile/sub"), "afile": "x"},
        )
    )
    cases.append(Case("spec: --set unknown field", "spec", ["sweep", "s.yaml", "--dry-run", "--set", "model.layers=3"],
                      "model.layers", {"s.yaml": _spec("s")}))  # fmt: skip
    cases.append(Case("spec: --adaptive on a depth-only grid", "spec", ["sweep", "s.yaml", "--dry-run", "--adaptive"],
                      "--adaptive", {"s.yaml": _spec("s", grid={"model.depth": [1, 2, 4]})}))  # fmt: skip
    return cases


def config_cases() -> list[Case]:
    small = ["--set", "data.synthetic.num_users=50", "--no-track"]
    sets = [
        ("model.family=resnet", "model.family"),
        ("train.device=tpu", "train.device"),
        ("train.lr=-1", "train.lr"),
        ("train.batch_size=0", "train.batch_size"),
        ("model.width=abc", "model.width"),
        ("model.dropout=1.5", "model.dropout"),
        ("eval.ks=[0]", "eval.ks"),
        ("data.max_seq_len=-3", "data.max_seq_len"),
        ("train.betas=[0.9]", "train.betas"),
        ("nosuchsection.x=1", "nosuchsection"),
        ("model.depth", "model.depth"),  # no '='
        ("train.epochs=1e400", "train.epochs"),
    ]
    cases = [Case(f"config: --set {s}", "config", ["train", *small, "--set", s], tok) for s, tok in sets]
    cases += [
        Case("config: unknown key in a config file", "config", ["config", "check", "c.yaml"], "model.layers",
             {"c.yaml": "model:\n  family: hstu\n  layers: 4\n"}),
        Case("config: duplicate key in a config file", "config", ["config", "check", "c.yaml"], "duplicate key",
             {"c.yaml": "model:\n  depth: 2\n  depth: 4\n"}),
        Case("config: missing config file", "config", ["config", "check", "none.yaml"], "none.yaml"),
    ]  # fmt: skip
    return cases


def data_cases() -> list[Case]:
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb") as f:
        f.write(b"1\t2\t5\t881250949\n" * 2000)
    truncated = gz.getvalue()[: len(gz.getvalue()) // 2]
    files: list[tuple[str, str, str | bytes, str]] = [
        ("missing file", "missing.tsv", "", "missing.tsv"),
        ("empty file", "u.data", "", "empty"),
        ("header only", "t.tsv", "user_id\titem_id\ttimestamp\n", "t.tsv"),
        ("comma in u.data", "u.data", "1,2,5,881250949\n", "u.data:1"),
        ("ragged line", "u.data", "1\t2\t5\t881250949\n1\t2\n", "u.data:2"),
        ("non-numeric timestamp", "t.tsv", "user_id\titem_id\ttimestamp\n1\t2\t3\n1\t4\tlater\n", "t.tsv:3"),
        ("timestamp -9e30", "u.data", "1\t2\t5\t-9e30\n1\t3\t4\t100\n", "u.data:1"),
        ("timestamp 1e300", "u.data", "1\t2\t5\t100\n1\t3\t4\t1e300\n", "u.data:2"),
        ("timestamp inf", "t.tsv", "user_id\titem_id\ttimestamp\n1\t2\tinf\n1\t3\t4\n", "t.tsv:2"),
        ("timestamp beyond int64", "t.csv", "user_id,item_id,timestamp\n1,2,99999999999999999999\n1,3,4\n", "t.csv:2"),
        ("non-integer MovieLens id", "u.data", "1\tx2\t5\t100\n", "u.data:1"),
        ("empty user id", "t.csv", "user_id,item_id,timestamp\n,2,3\n1,3,4\n", "t.csv:2"),
        ("missing columns", "t.csv", "user,item,time\n1,2,3\n", "t.csv"),
        ("truncated gzip", "i.tsv.gz", truncated, "i.tsv.gz"),
        ("gzip name, plain content", "p.tsv.gz", "user_id\titem_id\ttimestamp\n1\t2\t3\n", "p.tsv.gz"),
        ("garbage parquet", "x.parquet", b"PAR1 not really", "x.parquet"),
        ("broken JSON line", "reviews.json", '{"reviewerID": "a", "asin": "b", "unixReviewTime": 5}\n{nope\n',
         "reviews.json:2"),
        ("JSON missing field", "reviews.json", '{"reviewerID": "a", "unixReviewTime": 5}\n', "reviews.json:1"),
        ("JSON timestamp out of range", "reviews.json",
         '{"reviewerID": "a", "asin": "b", "unixReviewTime": 99999999999999999999999}\n', "reviews.json:1"),
        ("unknown extension", "data.xyz", "1 2 3\n", "data.xyz"),
        ("binary garbage as tsv", "g.tsv", b"\x00\xff\xfe" * 100, "g.tsv"),
    ]  # fmt: skip
    cases = [Case(f"data: {what}", "data", ["data", "describe", name], token, {name: content} if content != "" or
                  what == "empty file" else {}) for what, name, content, token in files]  # fmt: skip
    cases.append(
        Case(
            "data: a directory as the data file", "data", ["data", "describe", "adir"], "adir", {"adir/x": ""}
        )
    )
    cases.append(Case("data: unknown format", "data", ["data", "describe", "t.tsv", "--set", "data.format=xml"],
                      "data.format", {"t.tsv": "user_id\titem_id\ttimestamp\n1\t2\t3\n"}))  # fmt: skip
    cases.append(
        Case("data: unknown dataset name", "data", ["data", "download", "netflix-prize"], "netflix-prize")
    )
    if ML100K.exists():
        cases.append(Case("data: filters leave nothing", "data",
                          ["data", "describe", str(ML100K), "--set", "data.min_item_count=100000"], "empty after"))  # fmt: skip
    return cases


def _runs_csv(rows: int = 6) -> str:
    import pandas as pd

    data = [{"depth": d, "width": w, "status": "finished", "final_ndcg@10": 0.1 + 0.01 * d + 0.001 * w,
             "non_embedding_params": 1000 * d * w} for d in (1, 2, 4) for w in (8, 16)][:rows]  # fmt: skip
    return pd.DataFrame(data).to_csv(index=False)


def fit_cases() -> list[Case]:
    runs = {"runs.csv": _runs_csv()}
    base = ["fit", "--runs", "runs.csv", "--no-track", "--bootstrap", "10"]
    return [
        Case("fit: missing runs file", "fit", ["fit", "--runs", "nope.csv", "--no-track"], "nope.csv"),
        Case("fit: empty runs file", "fit", ["fit", "--runs", "e.csv", "--no-track"], "e.csv", {"e.csv": ""}),
        Case("fit: runs file is not a table", "fit", ["fit", "--runs", "g.csv", "--no-track"], "g.csv",
             {"g.csv": b"\x00\x01binary"}),
        Case("fit: unknown law", "fit", [*base, "--law", "gravity"], "gravity", runs),
        Case("fit: metric not in table", "fit", [*base, "--metric", "hr@10"], "hr@10", runs),
        Case("fit: unknown --x column", "fit", [*base, "--law", "power", "--x", "colour"], "colour", runs),
        Case("fit: unknown --opt key", "fit", [*base, "--opt", "shape=round"], "shape", runs),
        Case("fit: --opt without '='", "fit", [*base, "--opt", "form"], "form", runs),
        Case("fit: bad --form", "fit", [*base, "--form", "sideways"], "sideways", runs),
        Case("fit: bad --direction", "fit", [*base, "--law", "power", "--direction", "up"], "up", runs),
        Case("fit: bad --holdout", "fit", [*base, "--holdout", "biggest:2"], "holdout", runs),
        Case("fit: negative bootstrap", "fit", ["fit", "--runs", "runs.csv", "--no-track", "--bootstrap", "-5"],
             "bootstrap", runs),
        Case("fit: bad --interval", "fit", [*base, "--interval", "jackknife"], "jackknife", runs),
        Case("fit: trust below 1", "fit", [*base, "--trust", "0.5"], "trust", runs),
        Case("fit: too few rows", "fit", ["fit", "--runs", "s.csv", "--no-track"], "parameters",
             {"s.csv": _runs_csv(3)}),
        Case("fit: unknown sweep", "fit", ["fit", "--sweep", "no_such_sweep", "--no-track"], "no_such_sweep"),
    ]  # fmt: skip


def predict_cases(fit_json: str) -> list[Case]:
    good = {"f.json": fit_json}
    d = json.loads(fit_json)
    cases = []
    for key in ("law", "variables", "theta", "loss", "r2"):
        broken = {k: v for k, v in d.items() if k != key}
        cases.append(Case(f"predict: fit JSON without '{key}'", "predict", ["predict", "--fit", "b.json", "--at",
                          "depth=2,width=8"], "b.json", {"b.json": json.dumps(broken)}))  # fmt: skip
    cases += [
        Case("predict: missing fit file", "predict", ["predict", "--fit", "none.json"], "none.json"),
        Case("predict: fit file not JSON", "predict", ["predict", "--fit", "n.json"], "n.json", {"n.json": "{oops"}),
        Case("predict: fit JSON is a list", "predict", ["predict", "--fit", "l.json"], "l.json", {"l.json": "[1, 2]"}),
        Case("predict: theta of the wrong length", "predict", ["predict", "--fit", "t.json", "--at", "non_embedding_params=1000"],
             "t.json", {"t.json": json.dumps({**d, "theta": [1.0]})}),
        Case("predict: --at malformed", "predict", ["predict", "--fit", "f.json", "--at", "depth:2"], "depth:2", good),
        Case("predict: --at unknown variable", "predict", ["predict", "--fit", "f.json", "--at", "colour=3"], "colour",
             good),
        Case("predict: --at non-numeric", "predict", ["predict", "--fit", "f.json", "--at", "depth=two,width=8"], "two",
             good),
        Case("predict: negative budget", "predict", ["predict", "--fit", "f.json", "--max-params", "-5"], "max-params",
             good),
        Case("predict: bad --params-kind", "predict", ["predict", "--fit", "f.json", "--max-params", "1e6",
             "--params-kind", "some"], "params-kind", good),
        Case("predict: law mismatch", "predict", ["predict", "--fit", "f.json", "--law", "chinchilla"], "chinchilla",
             good),
    ]  # fmt: skip
    return cases


def _report_runs() -> str:
    """A minimal runs table as `scalelab sweep` writes it (the columns the report reads)."""
    import pandas as pd

    rows = [{"cell_id": f"c{d}{w}", "name": f"hstu-L{d}-D{w}", "status": "finished", "family": "hstu", "depth": d,
             "width": w, "data_fraction": 1.0, "non_embedding_params": 1000 * d * w, "final_hr@10": 0.1 * d,
             "final_ndcg@10": 0.05 * d} for d in (1, 2) for w in (8, 16)]  # fmt: skip
    return pd.DataFrame(rows).to_csv(index=False)


def report_cases(fit_json: str) -> list[Case]:
    runs = _report_runs()
    return [
        Case("report: unknown sweep", "report", ["report", "no_such_sweep"], "no_such_sweep"),
        Case("report: directory without runs table", "report", ["report", "emptydir"], "emptydir", {"emptydir/x": ""}),
        Case("report: broken fit JSON in fits/", "report", ["report", "sw"], "bad.json",
             {"sw/runs.csv": runs, "sw/fits/bad.json": '{"law": "power"}'}),
        Case("report: fit JSON not JSON", "report", ["report", "sw2"], "bad.json",
             {"sw2/runs.csv": runs, "sw2/fits/bad.json": "{"}),
        Case("report: runs table garbage", "report", ["report", "sw3"], "runs.csv", {"sw3/runs.csv": b"\x00\x01"}),
        Case("report: runs table of another tool", "report", ["report", "sw4"], "runs.csv", {"sw4/runs.csv": _runs_csv()}),
        Case("report: unknown --compare sweep", "report", ["report", "sw5", "--compare", "nope_sweep"], "nope_sweep",
             {"sw5/runs.csv": runs}),
    ]  # fmt: skip


def cli_cases() -> list[Case]:
    return [
        Case("cli: unknown command", "cli", ["launch"], "launch"),
        Case("cli: unknown option", "cli", ["fit", "--colour", "red"], "--colour"),
        Case("cli: option missing its value", "cli", ["predict", "--fit"], "--fit"),
    ]


# ------------------------------------------------------------------------------------------ running


@dataclass
class Outcome:
    case: Case
    code: int
    stderr: str
    verdict: str  # clean | traceback | internal | wrong
    seconds: float


def run_case(case: Case, workdir: Path) -> Outcome:
    from scalelab.cli import main

    here = workdir / f"case{abs(hash(case.name)) % 10**8}"
    here.mkdir(parents=True, exist_ok=True)
    for rel, content in case.files.items():
        p = here / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content)
    out, err = io.StringIO(), io.StringIO()
    cwd = Path.cwd()
    t0 = time.perf_counter()
    os.chdir(here)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(case.argv)
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException as e:
                import traceback

                traceback.print_exc(file=err)
                code = 99
                del e
    finally:
        os.chdir(cwd)
    text = err.getvalue()
    lines = [ln for ln in text.splitlines() if ln.strip() and " INFO " not in ln]
    if "Traceback (most recent call last)" in text:
        verdict = "traceback"
    elif "internal error" in text:
        verdict = "internal"
    elif code != 0 and len(lines) == 1 and case.token.lower() in lines[0].lower():
        verdict = "clean"
    elif (
        code != 0
        and len(lines) > 1
        and any(case.token.lower() in ln.lower() for ln in lines)
        and lines[0].startswith(("Usage:", " Usage:"))
    ):
        verdict = "clean"  # typer's usage errors: the usage line, then the error naming the option
    else:
        verdict = "wrong"
    return Outcome(case, code, text, verdict, time.perf_counter() - t0)


def catalogue(workdir: Path) -> list[Case]:
    fit_json = _make_fit(workdir)
    return [*spec_cases(), *config_cases(), *data_cases(), *fit_cases(), *predict_cases(fit_json),
            *report_cases(fit_json), *cli_cases()]  # fmt: skip


def _make_fit(workdir: Path) -> str:
    """A real fit JSON (power law on a small table) for the predict and report cases."""
    from scalelab.cli import main

    d = workdir / "fit_source"
    d.mkdir(parents=True, exist_ok=True)
    (d / "runs.csv").write_text(_runs_csv())
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            main(["fit", "--runs", str(d / "runs.csv"), "--law", "power", "--x", "non_embedding_params",
                  "--no-track", "--bootstrap", "20", "--holdout", "none"])  # fmt: skip
        except SystemExit as e:
            if e.code:
                raise RuntimeError("could not make the reference fit") from None
    return next((d / "fits").glob("*.json")).read_text()


def run_all(progress: Callable[[int, int, Outcome], None] | None = None) -> list[Outcome]:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.setdefault("SCALELAB_CACHE", str(work / "cache"))
        os.environ.setdefault("SCALELAB_DATA", str(work / "data"))
        cases = catalogue(work)
        outcomes = []
        for i, case in enumerate(cases):
            o = run_case(case, work)
            outcomes.append(o)
            if progress:
                progress(i + 1, len(cases), o)
        return outcomes


def summarise(outcomes: list[Outcome]) -> dict[str, Any]:
    by_verdict: dict[str, int] = {}
    by_kind: dict[str, dict[str, int]] = {}
    for o in outcomes:
        by_verdict[o.verdict] = by_verdict.get(o.verdict, 0) + 1
        k = by_kind.setdefault(o.case.kind, {})
        k[o.verdict] = k.get(o.verdict, 0) + 1
    return {
        "tried": len(outcomes),
        **{v: by_verdict.get(v, 0) for v in ("clean", "traceback", "internal", "wrong")},
        "by_kind": by_kind,
        "cases": [
            {
                "name": o.case.name,
                "verdict": o.verdict,
                "exit": o.code,
                "stderr": " | ".join(ln for ln in o.stderr.splitlines() if ln.strip())[:300],
            }
            for o in outcomes
        ],
    }


def main() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from common import machine

    t0 = time.time()
    outcomes = run_all(lambda i, n, o: print(f"[{i}/{n}] {o.verdict:9s} {o.case.name}", file=sys.stderr))
    summary = summarise(outcomes)
    summary["machine"] = machine()
    summary["seconds"] = round(time.time() - t0, 1)
    out = ROOT / "results" / "reference" / "bad_inputs.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        f"tried {summary['tried']}: clean {summary['clean']}, traceback {summary['traceback']}, "
        f"internal error {summary['internal']}, wrong {summary['wrong']} ({summary['seconds']} s) -> {out}"
    )
    for c in summary["cases"]:
        if c["verdict"] != "clean":
            print(f"  {c['verdict']}: {c['name']} (exit {c['exit']}): {c['stderr']}")


if __name__ == "__main__":
    main()
