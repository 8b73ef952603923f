"""Atomic checkpoints and the config fingerprint that decides whether one may be resumed."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from scalelab.config import RunConfig

# Settings a resumed run may change without invalidating its checkpoint.
_RESUMABLE_CHANGES = {
    "name": None,
    "output_dir": None,
    "tracking": None,
    "train": {"epochs", "patience", "eval_every", "device", "token_budget", "compile"},
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
    for path, old in _INTRODUCED_LATER.items():
        *parents, key = path
        node = d
        for part in parents:
            node = node[part]
        if node.get(key) == old:
            node.pop(key, None)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(path: Path, device: torch.device) -> dict[str, Any]:
    return torch.load(path, map_location=device, weights_only=False)
