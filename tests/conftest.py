from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"
sys.path.insert(0, str(Path(__file__).parent))  # for reference_impls


def shared_file(rel: str) -> Path:
    """A real dataset file from ../shared/datasets, or skip when this machine does not have it."""
    p = SHARED / rel
    if not p.exists():
        pytest.skip(f"{p} not present (real datasets live in ../shared/datasets)")
    return p


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test's caches and data root out of the user's home."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("SCALELAB_CACHE", str(base / "cache"))
    monkeypatch.setenv("SCALELAB_DATA", str(base / "data"))
