"""Public datasets: official URLs, checksums, and a verified download into the data root.

The data root is `$SCALELAB_DATA` (default `~/.cache/scalelab/data`). A dataset NAME lives in
`<root>/<NAME>/`, and `data.path: NAME` in a config resolves to its interaction file there.
MovieLens archives carry GroupLens' published MD5. The Amazon 2014 files have no published
checksum; their SHA-256 is recorded on first download (`<root>/<NAME>/SHA256`) and checked on
every later install from a local copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scalelab.errors import DownloadError


@dataclass(frozen=True)
class PublicDataset:
    name: str
    url: str
    file: str  # interaction file, relative to <root>/<name>/
    format: str
    md5: str | None = None  # published checksum of the downloaded archive/file
    description: str = ""

    @property
    def archive_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]


_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
_SNAP = "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles"

DATASETS: dict[str, PublicDataset] = {
    d.name: d
    for d in [
        PublicDataset(
            "ml-100k",
            f"{_GROUPLENS}/ml-100k.zip",
            "ml-100k/u.data",
            "ml-100k",
            "0e33842e24a9c977be4e0107933c0723",
            "MovieLens 100K: 943 users, 1,682 movies",
        ),
        PublicDataset(
            "ml-1m",
            f"{_GROUPLENS}/ml-1m.zip",
            "ml-1m/ratings.dat",
            "ml-1m",
            "c4d9eecfca2ab87c1945afe126590906",
            "MovieLens 1M: 6,040 users, 3,706 movies",
        ),
        PublicDataset(
            "ml-20m",
            f"{_GROUPLENS}/ml-20m.zip",
            "ml-20m/ratings.csv",
            "ml-20m",
            "cd245b17a1ae2cc31bb14903e1204af3",
            "MovieLens 20M: 138,493 users, 26,744 movies",
        ),
    ]
}

# Amazon review data 2014 (McAuley et al.), per category: ratings-only CSV and 5-core reviews.
AMAZON_2014_CATEGORIES = {
    "beauty": "Beauty",
    "books": "Books",
    "electronics": "Electronics",
    "movies": "Movies_and_TV",
    "cds": "CDs_and_Vinyl",
    "clothing": "Clothing_Shoes_and_Jewelry",
    "home": "Home_and_Kitchen",
    "kindle": "Kindle_Store",
    "sports": "Sports_and_Outdoors",
    "phones": "Cell_Phones_and_Accessories",
    "health": "Health_and_Personal_Care",
    "toys": "Toys_and_Games",
    "games": "Video_Games",
    "tools": "Tools_and_Home_Improvement",
    "apps": "Apps_for_Android",
    "office": "Office_Products",
    "pets": "Pet_Supplies",
    "automotive": "Automotive",
    "grocery": "Grocery_and_Gourmet_Food",
    "garden": "Patio_Lawn_and_Garden",
    "baby": "Baby",
    "music": "Digital_Music",
    "instruments": "Musical_Instruments",
    "video": "Amazon_Instant_Video",
}
for _short, _cat in AMAZON_2014_CATEGORIES.items():
    DATASETS[f"amazon-{_short}"] = PublicDataset(
        f"amazon-{_short}",
        f"{_SNAP}/ratings_{_cat}.csv",
        f"ratings_{_cat}.csv",
        "amazon-csv",
        None,
        f"Amazon 2014 {_cat}: ratings only (user,item,rating,time)",
    )
    DATASETS[f"amazon-{_short}-5core"] = PublicDataset(
        f"amazon-{_short}-5core",
        f"{_SNAP}/reviews_{_cat}_5.json.gz",
        f"reviews_{_cat}_5.json.gz",
        "amazon-json",
        None,
        f"Amazon 2014 {_cat}: 5-core reviews (JSON lines)",
    )


def data_root() -> Path:
    return Path(os.environ.get("SCALELAB_DATA", "~/.cache/scalelab/data")).expanduser()


def get_dataset(name: str) -> PublicDataset:
    if name not in DATASETS:
        raise DownloadError(f"unknown dataset {name!r}; `scalelab data list` shows the known ones")
    return DATASETS[name]


def installed_path(name: str, root: Path | None = None) -> Path:
    d = get_dataset(name)
    return (root or data_root()) / d.name / d.file


def _digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(
    name: str,
    root: Path | None = None,
    *,
    local_file: Path | None = None,
    force: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Fetch (or install from `local_file`) and verify dataset `name`; return its interaction file."""
    d = get_dataset(name)
    root = root or data_root()
    target = installed_path(name, root)
    if target.exists() and not force:
        return target
    dest = root / d.name
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmpdir:
        archive = Path(tmpdir) / d.archive_name
        if local_file is not None:
            if not local_file.is_file():
                raise DownloadError(f"{local_file}: no such file")
            shutil.copyfile(local_file, archive)
        else:
            _fetch(d.url, archive, progress, timeout, d.name)
        _verify(d, archive, dest, source=str(local_file or d.url))
        if archive.suffix == ".zip":
            try:
                with zipfile.ZipFile(archive) as z:
                    z.extractall(tmpdir)
            except zipfile.BadZipFile:
                raise DownloadError(f"{local_file or d.url}: not a valid zip archive") from None
            extracted = Path(tmpdir) / d.file
            if not extracted.exists():
                raise DownloadError(f"{local_file or d.url}: archive does not contain {d.file}")
            top = Path(tmpdir) / Path(d.file).parts[0]
            final = dest / Path(d.file).parts[0]
            if final.exists():
                shutil.rmtree(final)
            os.replace(top, final)
        else:
            os.replace(archive, target)
    return target


def _fetch(
    url: str, out: Path, progress: Callable[[int, int | None], None] | None, timeout: float, name: str
) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(out, "wb") as f:
            total = int(resp.headers.get("Content-Length") or 0) or None
            done = 0
            while block := resp.read(1 << 20):
                f.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(
            f"cannot download {url} ({reason}); if this machine is offline, fetch the file elsewhere and "
            f"install it with `scalelab data download {name} --from FILE`, or point data.path at a local file"
        ) from None


def _verify(d: PublicDataset, archive: Path, dest: Path, source: str) -> None:
    if d.md5 is not None:
        got = _digest(archive, "md5")
        if got != d.md5:
            raise DownloadError(f"{source}: MD5 {got} does not match the published {d.md5} for {d.name}")
        return
    recorded = dest / "SHA256"
    got = _digest(archive, "sha256")
    if recorded.exists():
        want = recorded.read_text().split()[0]
        if got != want:
            raise DownloadError(f"{source}: SHA-256 {got} does not match the one recorded in {recorded}")
    else:  # no published checksum: trust on first use, record it for later installs
        recorded.write_text(f"{got}  {d.archive_name}\n")
