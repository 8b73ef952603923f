from __future__ import annotations

import hashlib
import io
import socket
import zipfile
from pathlib import Path

import pytest

from scalelab.data import download
from scalelab.data.download import PublicDataset
from scalelab.data.loader import resolve_source
from scalelab.errors import DataError, DownloadError


def make_zip(path: Path) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ml-tiny/ratings.dat", "1::10::5::978300760\n1::11::3::978300761\n1::12::3::978300762\n")
        z.writestr("ml-tiny/README", "tiny")
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, PublicDataset]:
    archive = make_zip(tmp_path / "ml-tiny.zip")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    d = PublicDataset("ml-tiny", "http://127.0.0.1:9/ml-tiny.zip", "ml-tiny/ratings.dat", "ml-1m", md5)
    monkeypatch.setitem(download.DATASETS, "ml-tiny", d)
    return archive, d


def test_install_from_local_copy_verifies_and_unpacks(tiny, tmp_path: Path) -> None:
    archive, _d = tiny
    root = tmp_path / "root"
    path = download.download("ml-tiny", root, local_file=archive)
    assert path == root / "ml-tiny" / "ml-tiny" / "ratings.dat" and path.read_text().startswith("1::10")
    assert download.download("ml-tiny", root) == path  # installed: nothing to do


def test_checksum_mismatch_is_refused(tiny, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive, d = tiny
    monkeypatch.setitem(
        download.DATASETS, "ml-tiny", PublicDataset(d.name, d.url, d.file, d.format, "0" * 32)
    )
    with pytest.raises(DownloadError, match="does not match the published"):
        download.download("ml-tiny", tmp_path / "root", local_file=archive)
    assert not (tmp_path / "root" / "ml-tiny" / "ml-tiny").exists()


def test_offline_fails_cleanly_with_advice(tiny, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    download.DATASETS["ml-tiny"] = PublicDataset(
        "ml-tiny", f"http://127.0.0.1:{port}/x.zip", "ml-tiny/ratings.dat", "ml-1m"
    )
    with pytest.raises(DownloadError, match=r"cannot download .*--from FILE"):
        download.download("ml-tiny", tmp_path / "root", timeout=5)


def test_no_published_checksum_is_recorded_then_enforced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    f = tmp_path / "ratings_Beauty.csv"
    f.write_text("A1,B1,5.0,1\n")
    d = PublicDataset("amazon-x", "http://127.0.0.1:9/ratings_Beauty.csv", "ratings_Beauty.csv", "amazon-csv")
    monkeypatch.setitem(download.DATASETS, "amazon-x", d)
    root = tmp_path / "root"
    path = download.download("amazon-x", root, local_file=f)
    assert path.read_text() == "A1,B1,5.0,1\n" and (root / "amazon-x" / "SHA256").exists()
    f.write_text("A1,B1,4.0,1\n")
    with pytest.raises(DownloadError, match="does not match the one recorded"):
        download.download("amazon-x", root, local_file=f, force=True)


def test_registry_has_official_movielens_sources() -> None:
    assert download.DATASETS["ml-1m"].url == "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
    assert download.DATASETS["ml-1m"].md5 == "c4d9eecfca2ab87c1945afe126590906"
    assert download.DATASETS["amazon-beauty"].format == "amazon-csv"


def test_dataset_names_resolve_under_the_data_root(
    tiny, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    archive, _ = tiny
    monkeypatch.setenv("SCALELAB_DATA", str(tmp_path / "root"))
    with pytest.raises(DataError, match="scalelab data download ml-tiny"):
        resolve_source("ml-tiny")
    download.download("ml-tiny", local_file=archive)
    assert resolve_source("ml-tiny").name == "ratings.dat"
