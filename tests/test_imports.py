"""The fitting layer and the CLI's entry point stay light: importing them loads neither torch nor Ray."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["fitters", "scalelab.config", "scalelab.cli", "scalelab.fitting"])
def test_import_loads_neither_torch_nor_ray(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in ('torch', 'ray') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
