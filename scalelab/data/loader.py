"""Load a processed dataset for a `DataConfig`, through a cache shared by all processes.

The cache key hashes the source (file content, or the synthetic generator's settings) and every
preprocessing field, so a sweep's trials parse a raw file once. Entries are written atomically;
several processes building the same entry at once each write a complete file and the last rename
wins, so a reader never sees a partial file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scalelab.atomic import atomic_write_text
from scalelab.config import DataConfig
from scalelab.data import download
from scalelab.data.preprocess import build_sequences
from scalelab.data.readers import read_interactions
from scalelab.data.sequences import SequenceData
from scalelab.data.synthetic import generate_interactions
from scalelab.errors import DataError

PIPELINE_VERSION = 1  # bump when preprocessing changes its output for the same config

# Fields that do not change the processed sequences (applied later or bookkeeping only).
_NOT_IN_KEY = {"cache", "split", "max_seq_len"}


def cache_dir() -> Path:
    return Path(os.environ.get("SCALELAB_CACHE", "~/.cache/scalelab/processed")).expanduser()


def resolve_source(path: str) -> Path:
    """A file path, or a dataset name from the registry resolved under the data root."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise DataError(f"{p}: is a directory; pass the interaction file inside it")
    if p.exists():
        return p.resolve()
    if path in download.DATASETS:
        installed = download.installed_path(path)
        if installed.exists():
            return installed
        raise DataError(
            f"dataset {path!r} is not in {download.data_root()}: run `scalelab data download {path}` "
            "or set data.path to a local file"
        )
    raise DataError(f"{p}: no such file")


def source_fingerprint(path: Path) -> str:
    """SHA-256 of the file content, memoised by (path, size, mtime) so big files hash once."""
    st = path.stat()
    memo_dir = cache_dir() / "fingerprints"
    memo = memo_dir / (hashlib.sha1(str(path).encode()).hexdigest() + ".json")
    stamp = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    try:
        saved = json.loads(memo.read_text())
        if {k: saved.get(k) for k in stamp} == stamp:
            return str(saved["sha256"])
    except (OSError, ValueError, KeyError):
        pass
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    _atomic_write_text(memo, json.dumps({**stamp, "sha256": digest}))
    return digest


def cache_key(cfg: DataConfig) -> str:
    fields: dict[str, Any] = cfg.model_dump(mode="json", exclude=_NOT_IN_KEY)
    fields.pop("item_features")  # read at training time, not part of the sequences
    if cfg.domains is not None:
        fields.pop("synthetic")
        source: Any = {
            "domains": {
                name: {
                    **d.model_dump(mode="json", exclude={"path", "item_features"}),
                    "sha256": source_fingerprint(_domain_source(name, d.path)),
                }
                for name, d in cfg.domains.items()
            }
        }
        fields.pop("domains")
    elif cfg.path is None:
        fields.pop("path")
        fields.pop("columns")
        fields.pop("format")
        source = {"synthetic": fields.pop("synthetic")}
    else:
        fields.pop("synthetic")
        fields.pop("path")
        source = {"sha256": source_fingerprint(resolve_source(cfg.path))}
    if cfg.catalogue is not None:
        fields.pop("catalogue")
        source["catalogue_sha256"] = source_fingerprint(_catalogue_path(cfg.catalogue))
    blob = json.dumps({"v": PIPELINE_VERSION, "source": source, "prep": fields}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def load_dataset(cfg: DataConfig) -> SequenceData:
    """The processed sequences for `cfg`, from the cache when possible."""
    key = cache_key(cfg)
    entry = cache_dir() / f"{key}.npz"
    if cfg.cache and entry.exists():
        try:
            data = SequenceData.load(entry)
            data.meta["cache"] = {"key": key, "path": str(entry), "hit": True}
            return data
        except DataError:
            entry.unlink(missing_ok=True)  # a damaged entry is rebuilt, not trusted
    if cfg.domains is not None:
        df = read_domains(cfg)
        source = "domains " + ", ".join(f"{n}={d.path}" for n, d in cfg.domains.items())
    elif cfg.path is None:
        df = generate_interactions(cfg.synthetic)
        source = "synthetic"
    else:
        src = resolve_source(cfg.path)
        df = read_interactions(src, cfg.format, cfg.columns)
        source = str(src)
    data = build_sequences(df, cfg, source)
    if cfg.catalogue is not None:
        data = add_catalogue(data, read_catalogue(_catalogue_path(cfg.catalogue)))
    data.meta["cache_key"] = key
    if cfg.cache:
        try:
            data.save(entry)
        except OSError as e:  # the cache is an optimisation: say so, keep going
            data.meta["cache_error"] = f"{e.__class__.__name__}: {e}"
    data.meta["cache"] = {"key": key, "path": str(entry), "hit": False}
    return data


def read_domains(cfg: DataConfig) -> pd.DataFrame:
    """One interaction table from the sources of a multi-domain config: items namespaced
    `domain:id` (two domains' item 100 are different items), users too unless `shared_users`,
    a `domain` column; preprocessing then merges each user's events of every domain by time."""
    parts = []
    for name, d in (cfg.domains or {}).items():
        df = read_interactions(_domain_source(name, d.path), d.format, d.columns)
        df["item"] = name + ":" + df["item"].astype(str)
        if not cfg.shared_users:
            df["user"] = name + ":" + df["user"].astype(str)
        df["domain"] = name
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


def _domain_source(name: str, path: str) -> Path:
    try:
        return resolve_source(path)
    except DataError as e:
        raise DataError(f"data.domains.{name}.path: {e}") from None


def _catalogue_path(path: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"{p}: no such file (data.catalogue)")
    return p.resolve()


def read_catalogue(path: Path) -> list[str]:
    """Item ids of a catalogue file: the first field of each line (`::`, `|`, TAB or comma separated)."""
    ids = []
    with open(path, encoding="latin-1") as f:
        for n, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            for sep in ("::", "|", "\t", ","):
                if sep in line:
                    line = line.split(sep, 1)[0]
                    break
            if not line.strip():
                raise DataError(f"{path}:{n}: empty item id")
            ids.append(line.strip())
    if not ids:
        raise DataError(f"{path}: no item ids (data.catalogue)")
    return ids


def add_catalogue(data: SequenceData, ids: list[str]) -> SequenceData:
    """Append the catalogue's items that the sequences do not contain (ids num_items+1, ...);
    raw ids stay integers when both sides are, else everything becomes a string."""
    known = {str(x) for x in data.item_ids[1:]}
    extra = list(dict.fromkeys(i for i in ids if i not in known))
    if extra:
        if data.item_ids.dtype.kind in "iu" and all(i.lstrip("-").isdigit() for i in extra):
            data.item_ids = np.concatenate([data.item_ids, np.asarray(extra, dtype=np.int64)])
        else:
            data.item_ids = np.concatenate([data.item_ids.astype(str), np.asarray(extra)])
    data.meta["catalogue_extra_items"] = len(extra)
    return data


def _atomic_write_text(path: Path, text: str) -> None:
    with contextlib.suppress(OSError):  # a lost memo only costs a re-hash next time
        atomic_write_text(text, path)
