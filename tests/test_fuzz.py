"""Property-based fuzzing of sweep specs and run configs (hypothesis).

Every mutation below makes a valid file invalid by construction: wrong types, unknown keys, empty
or huge grids, negative or zero sizes, contradictory switches, unknown families. The property: the
loader refuses it with a `ConfigError` whose message is one line naming the file, and the CLI
exits non-zero with that one line on stderr, no traceback, and no results directory created.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalelab.cli import main
from scalelab.config import load_config
from scalelab.errors import ConfigError
from scalelab.sweeps.spec import load_sweep

VALID_SPEC: dict[str, Any] = {
    "name": "fuzz",
    "base": {
        "data": {"synthetic": {"num_users": 50, "num_items": 20}, "max_seq_len": 8},
        "model": {"family": "hstu", "depth": 1, "width": 8},
        "train": {"epochs": 1, "batch_size": 16},
    },
    "grid": {"model.depth": [1, 2]},
    "resources": {"cpu": 1},
}

SIZE_FIELDS = [
    ("base", "model", "depth"), ("base", "model", "width"), ("base", "model", "heads"),
    ("base", "train", "epochs"), ("base", "train", "batch_size"), ("base", "train", "lr"),
    ("base", "train", "num_negatives"), ("base", "data", "max_seq_len"),
    ("base", "data", "synthetic", "num_users"), ("base", "data", "synthetic", "num_items"),
    ("resources", "cpu"), ("retries",), ("max_concurrent",),
]  # fmt: skip
INT_FIELDS = [p for p in SIZE_FIELDS if p[-1] not in ("lr", "cpu")]
KEY_PARENTS = [(), ("base",), ("base", "model"), ("base", "train"), ("base", "data"), ("resources",)]
WRONG_TYPES: list[Any] = ["eight", [1, 2], {"a": 1}, None, True]
CONTRADICTIONS: list[dict[str, Any]] = [
    {"resources": {"cpu": 1, "gpu": 1, "npu": 1}},  # both accelerators
    {"base.model": {"family": "hstu", "depth": 1, "width": 10, "heads": 3}},  # heads do not divide width
    {"base.model": {"family": "sasrec", "depth": 1, "width": 8, "gate": False}},  # HSTU-only switch
    {"base.model": {"family": "gpt", "depth": 1, "width": 8, "residual": "pre"}},  # SASRec+-only switch
    {"zip": {"model.depth": [1, 2], "model.width": [8]}},  # unequal zip axes
    {"zip": {"model.depth": [1, 2]}},  # an axis in both grid and zip
    {"grid": {"model.depth": [1, 2], "model.nonexistent": [1]}},  # an axis that is not a field
    {"grid": {"model.family": ["hstu", "transformerxl"]}},  # an unknown family among valid ones
    {"base.eval": {"ks": []}},  # no cutoffs to report
    {"base.train": {"epochs": 1, "batch_size": 16, "loss": "hinge"}},  # unknown loss
]


def set_path(d: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for k in path[:-1]:
        d = d.setdefault(k, {})
    d[path[-1]] = value


@st.composite
def broken_specs(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    spec = copy.deepcopy(VALID_SPEC)
    kind = draw(
        st.sampled_from(
            ["unknown_key", "wrong_type", "bad_size", "empty_axis", "huge_grid", "contradiction", "family"]
        )
    )
    if kind == "unknown_key":
        parent = draw(st.sampled_from(KEY_PARENTS))
        key = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12))
        target = spec
        for k in parent:
            target = target[k]
        if key in target or (
            parent == ("base",)
            and key in ("data", "model", "train", "eval", "tracking", "name", "output_dir")
        ):
            key = key + "_zz"
        known = {"name", "description", "base", "grid", "zip", "configs", "resources", "max_concurrent", "retries",
                 "tracking", "address", "storage_path", "output_dir", "expected_cost", "by_size", "gpu", "npu"}  # fmt: skip
        if key in known:
            key = key + "_zz"
        target[key] = draw(st.integers() | st.text(max_size=5))
    elif kind == "wrong_type":
        path = draw(st.sampled_from([*SIZE_FIELDS, ("name",), ("base", "model", "family"), ("grid",)]))
        value = draw(st.sampled_from(WRONG_TYPES[1:] if path == ("name",) else WRONG_TYPES))
        if path in (("max_concurrent",),) and value is None:
            value = "eight"  # null is a valid max_concurrent
        set_path(spec, path, value)
    elif kind == "bad_size":
        path = draw(st.sampled_from(SIZE_FIELDS))
        value = draw(st.sampled_from([0, -1, -7]) if path != ("retries",) else st.sampled_from([-1, -3]))
        if path in INT_FIELDS:
            value = draw(st.sampled_from([value, 2.5])) if path not in (("retries",),) else value
        set_path(spec, path, value)
    elif kind == "empty_axis":
        spec["grid"] = {"model.width": []}
    elif kind == "huge_grid":
        n = draw(st.integers(min_value=101, max_value=400))
        spec["grid"] = {
            "model.depth": list(range(1, n + 1)),
            "model.width": list(range(8, 8 + n)),
            "train.seed": [0, 1],
        }
    elif kind == "contradiction":
        change = draw(st.sampled_from(CONTRADICTIONS))
        for k, v in change.items():
            path = tuple(k.split("."))
            set_path(spec, path, v)
    else:
        name = draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=10))
        if name in ("hstu", "sasrec", "gpt", "llama"):
            name += "x"
        spec["base"]["model"]["family"] = name
    return kind, spec


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=broken_specs())
def test_broken_sweep_specs_are_one_line_errors(case: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    kind, spec = case
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg, (kind, msg)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=broken_specs())
def test_cli_refuses_broken_specs_before_anything_starts(
    case: tuple[str, dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kind, spec = case
    out_dir = tmp_path / f"out-{abs(hash(repr(spec)))}"
    spec = {**spec, "output_dir": str(out_dir)}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(SystemExit) as info:
        main(["sweep", str(path), "--no-track"])
    err = capsys.readouterr().err
    assert info.value.code == 2, (kind, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, (kind, err)
    assert not out_dir.exists(), "a refused sweep must not start"


@st.composite
def broken_overrides(draw: st.DrawFn) -> str:
    field = draw(
        st.sampled_from(
            [
                "model.depth",
                "model.width",
                "train.epochs",
                "train.batch_size",
                "data.max_seq_len",
                "train.lr",
                "train.num_negatives",
            ]
        )
    )
    value = draw(st.sampled_from(["-1", "0", "abc", "[1, 2]", "{a: 1}", "null"]))
    if field == "train.lr" and value == "0":
        value = "-0.5"
    return f"{field}={value}"


@settings(max_examples=60, deadline=None)
@given(override=broken_overrides())
def test_broken_run_overrides_are_one_line_errors(override: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert "\n" not in str(info.value) and override.split("=")[0] in str(info.value)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["fit", "--law", "gravity", "--runs", "x.csv"], "law"),
        (["fit", "--law", "power", "--runs", "does-not-exist.csv"], "does-not-exist.csv"),
        (["train", "--set", "model.family=resnet", "--no-track"], "model.family"),
        (["train", "--set", "train.device=tpu", "--no-track"], "train.device"),
        (["sweep", "no-such-spec.yaml"], "no-such-spec.yaml"),
    ],
)
def test_cli_bad_arguments(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code != 0 and "Traceback" not in err and needle in err, err
