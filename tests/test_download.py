"""fernb download, against a local git repository (never the network)."""
from __future__ import annotations

import pytest

from fernb.cli import main
from fernb.errors import DataError
from fernb.download import download
from tests.conftest import git_repo_of_faces


@pytest.fixture
def local_repo(tmp_path):
    """A git repository laid out like the dataset repository, with 14 train and 14 test images."""
    return git_repo_of_faces(tmp_path / "repo", per_class=2, extra={"README.md": "faces\n"})  # never copied


def test_download_clones_and_verifies(local_repo, tmp_path):
    dest = download(tmp_path / "fer", url=str(local_repo), expected={"train": 14, "test": 14})
    assert len(list((dest / "train").rglob("*.png"))) == 14 and not (dest / "README.md").exists()


def test_download_refuses_wrong_counts(local_repo, tmp_path):
    with pytest.raises(DataError, match="holds 14 images, expected 28709"):
        download(tmp_path / "fer", url=str(local_repo))


def test_download_cli_reports_clone_failure(tmp_path, capsys):
    assert main(["download", str(tmp_path / "fer"), "--url", str(tmp_path / "no-repo")]) == 2
    assert "git clone failed" in capsys.readouterr().err


def test_download_refuses_existing_dataset(local_repo, tmp_path):
    download(tmp_path / "fer", url=str(local_repo), expected=None)
    with pytest.raises(DataError, match="already holds"):
        download(tmp_path / "fer", url=str(local_repo), expected=None)
