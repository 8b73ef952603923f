"""Atomic checkpoints and the config fingerprint that decides whether one may be resumed.

Format 2 (current): `checkpoint.pt` holds only tensors and plain types and is loaded with
`torch.load(weights_only=True)`, which cannot run code; beside it `checkpoint.json` holds the format
and the fingerprint, read (as JSON) and checked before the checkpoint itself is opened. A results
directory received from someone else therefore never unpickles anything on resume.

Format 1 (before 2026-12): a full pickle without `checkpoint.json`. It is refused unless the user
opts in with SCALELAB_TRUST_CHECKPOINTS=1 (it was written by their own scalelab); the run then
resumes and its next checkpoint is written in format 2.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from scalelab.atomic import atomic_write, atomic_write_json, atomic_write_text
from scalelab.config import RunConfig, drop_old_defaults

__all__ = ["atomic_save", "atomic_write_json", "atomic_write_text", "fingerprint", "load"]

# Settings a resumed run may change without invalidating its checkpoint.
_RESUMABLE_CHANGES = {
    "name": None,
    "output_dir": None,
    "tracking": None,
    "train": {
        "epochs",
        "patience",
        "min_steps",
        "eval_every",
        "eval_every_steps",
        "device",
        "token_budget",
        "compile",
    },
    "eval": {"batch_size", "item_chunk"},
}

# Settings introduced after checkpoints existed: left out of the fingerprint while they hold the value
# that reproduces the older behaviour, so checkpoints written before them stay resumable.
_INTRODUCED_LATER: dict[tuple[str, ...], Any] = {
    ("task",): {
        "kind": "retrieval",
        "negative_rate": 1.0,
        "eval_negative_rate": None,
        "scorer": "cross",
        "label_threshold": None,
        "target_behaviours": None,
    },
    ("features",): {"domain": False, "behaviour": False, "item_features": False, "feature_buckets": 4096},
    ("data", "catalogue"): None,
    ("data", "domains"): None,
    ("data", "shared_users"): False,
    ("data", "keep_domains"): None,
    ("data", "behaviour_from_rating"): False,
    ("data", "item_features"): None,
    ("data", "ties"): "file_order",
    ("data", "tie_seed"): 0,
    ("data", "synthetic", "domains"): 1,
    ("train", "bucket_pool"): None,
    ("train", "negatives_per"): "position",
    ("train", "cpu_workers"): 1,
    ("train", "length_groups"): 1,
    ("train", "target_weights"): "batch",
    ("model", "time_buckets"): "exact",
}


def fingerprint(cfg: RunConfig) -> str:
    """Hash of every setting that changes what a training step computes."""
    d = cfg.model_dump(mode="json")
    for section, keys in _RESUMABLE_CHANGES.items():
        if keys is None:
            d.pop(section, None)
        else:
            for k in keys:
                d[section].pop(k, None)
    d["data"].pop("cache", None)
    d["eval"]["monitor"] = cfg.monitor()  # null means the task's default (it was always ndcg@10)
    drop_old_defaults(d, _INTRODUCED_LATER)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def atomic_save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


FORMAT = 2
TRUST_ENV = "SCALELAB_TRUST_CHECKPOINTS"


def meta_path(path: Path) -> Path:
    return path.with_suffix(".json")


def save(state: dict[str, Any], path: Path, fp: str) -> None:
    """Write a format-2 checkpoint: its fingerprint (JSON) first, then the tensors."""
    meta = meta_path(path)
    want = {"format": FORMAT, "fingerprint": fp}
    try:
        current = json.loads(meta.read_text())
    except (OSError, ValueError):
        current = None
    if current != want:
        atomic_write_json(want, meta)
    atomic_save(state, path)


def stored_fingerprint(path: Path) -> str | None:
    """The fingerprint recorded beside the checkpoint at `path`; None when there is none or it is
    unreadable."""
    try:
        return str(json.loads(meta_path(path).read_text())["fingerprint"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load(path: Path, device: torch.device, fp: str) -> dict[str, Any]:
    """The checkpoint at `path` if it belongs to the config with fingerprint `fp`.

    The fingerprint is checked from `checkpoint.json` before `path` is opened; the file is then read
    with `weights_only=True`. A format-1 checkpoint needs SCALELAB_TRUST_CHECKPOINTS=1."""
    from scalelab.errors import CheckpointMismatch, UserError

    meta = meta_path(path)
    if meta.exists():
        stored = stored_fingerprint(path)
        if stored is None:
            raise UserError(f"{meta}: unreadable checkpoint description; delete the run directory to restart")
        if stored != fp:
            raise CheckpointMismatch(
                f"{path}: checkpoint of a different configuration (fingerprint {stored}, this config {fp}); "
                "use another output directory or delete it"
            )
        try:
            return torch.load(path, map_location=device, weights_only=True)
        except Exception as e:  # UnpicklingError for a pickle that is not plain tensors
            raise UserError(
                f"{path}: refused to load: not a plain-tensor checkpoint ({' '.join(str(e).split())[:160]}); "
                f"if you wrote it yourself, set {TRUST_ENV}=1 to load it as a full pickle"
            ) from None
    if os.environ.get(TRUST_ENV) != "1":
        raise UserError(
            f"{path}: checkpoint without {meta.name} (an older format, a full pickle: loading it could run code "
            f"it contains); if you wrote it yourself, set {TRUST_ENV}=1 to resume from it, else delete it"
        )
    state = torch.load(path, map_location=device, weights_only=False)  # opted in: the user's own file
    if not isinstance(state, dict) or state.get("fingerprint") != fp:
        raise CheckpointMismatch(
            f"{path}: checkpoint of a different configuration (fingerprint "
            f"{state.get('fingerprint') if isinstance(state, dict) else '?'}, this config {fp}); "
            "use another output directory or delete it"
        )
    return state


def read_history(path: Path) -> list[dict[str, Any]]:
    """The per-epoch history a format-2 checkpoint holds (read with `weights_only=True`), for a reader
    that did not see the epochs before a resume; [] when there is none or it cannot be read."""
    if not meta_path(path).exists() or not path.exists():
        return []
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a checkpoint being replaced or of another format: no earlier epochs known
        return []
    history = state.get("history") if isinstance(state, dict) else None
    return list(history) if isinstance(history, list) else []
