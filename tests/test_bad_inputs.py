"""The bad-input matrix (bench/bad_inputs.py): 120+ broken specs, configs, data files, fit and report
inputs through the real CLI; each must be refused on one line that names the file, field or line."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _matrix():
    spec = importlib.util.spec_from_file_location("bad_inputs", ROOT / "bench" / "bad_inputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bad_inputs"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_every_bad_input_is_a_clean_one_line_error() -> None:
    m = _matrix()
    outcomes = m.run_all()
    assert len(outcomes) >= 100
    bad = [f"{o.verdict}: {o.case.name}: {o.stderr.strip()[:300]}" for o in outcomes if o.verdict != "clean"]
    assert not bad, "\n".join(bad)


def test_the_classifier_catches_what_it_should(tmp_path: Path) -> None:
    """A case that is accepted, and one whose error does not name the token, are counted as wrong."""
    m = _matrix()
    accepted = m.Case(
        "valid spec", "spec", ["config", "check", "c.yaml"], "x", {"c.yaml": "model: {depth: 2}\n"}
    )
    assert m.run_case(accepted, tmp_path).verdict == "wrong"
    vague = m.Case("names another thing", "data", ["data", "describe", "missing.tsv"], "elsewhere.tsv")
    assert m.run_case(vague, tmp_path).verdict == "wrong"
