"""The notebooks as Colab runs them: a fresh runtime with google.colab, no data, the data downloaded once and reused."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import fernb
from tests.conftest import git_repo_of_faces

papermill = pytest.importorskip("papermill")
NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def text_of(nb) -> str:
    """Every text, stream and markdown output of an executed notebook, joined."""
    return "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") + o.get("data", {}).get("text/markdown", "")
                     for cell in nb.cells for o in cell.get("outputs", []))


@pytest.fixture
def colab(tmp_path, monkeypatch):
    """A stub google.colab on the kernel's path, an empty working folder, and a local git repository of faces."""
    stub = tmp_path / "stub" / "google" / "colab"  # 'google' stays a namespace package: protobuf lives there too
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("")
    (stub / "files.py").write_text("def upload():\n    return {}\n")
    (stub / "output.py").write_text("def eval_js(code):\n    raise RuntimeError('no browser in a test')\n")
    repo = git_repo_of_faces(tmp_path / "repo", per_class=10)
    for name in ("FERNB_DATA", "FERNB_CHECKPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "stub"))
    monkeypatch.setenv("FERNB_DATA_URL", str(repo))
    monkeypatch.setenv("FERNB_EPOCHS", "1")  # notebook 03: a quick run
    work = tmp_path / "runtime"
    work.mkdir()
    return work


def run(path: Path, cwd: Path):
    """Execute a notebook in cwd, the way Colab's Run all does."""
    return papermill.execute_notebook(str(path), str(cwd / f"out-{path.name}"), cwd=str(cwd), progress_bar=False,
                                      kernel_name="python3")


def test_each_notebook_gets_the_data_once_and_runs_to_the_end(colab):
    outputs = [text_of(run(path, colab)) for path in NOTEBOOKS]  # papermill raises if any cell fails
    data_users = [t for path, t in zip(NOTEBOOKS, outputs) if not path.name.startswith("06")]
    assert "downloading it into" in data_users[0]
    assert not any("downloading it into" in t for t in data_users[1:])  # reused, not fetched again
    assert len(list((colab / "data" / "fer2013" / "train").rglob("*.png"))) == 70
    assert not any("synthetic cartoon faces" in t for t in outputs)


def test_a_notebook_whose_data_cannot_be_had_says_so_in_its_output(colab, monkeypatch):
    monkeypatch.setenv("FERNB_DATA_URL", str(colab / "no-such-repo"))
    out = text_of(run(NOTEBOOKS[0], colab))
    assert "the download failed" in out and "synthetic cartoon faces" in out


def test_badges_and_install_cells_follow_the_one_project_url():
    owner_repo = fernb.__url__.removeprefix("https://github.com/")
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        first = "".join(cells[0]["source"])
        assert f"colab.research.google.com/github/{owner_repo}/blob/main/notebooks/{path.name}" in first, path.name
        install = "".join(cells[1]["source"])
        assert f'"fernb @ git+{fernb.__url__}@v{fernb.__version__}"' in install, path.name
        assert f'fernb.__version__ == "{fernb.__version__}"' in install, path.name


def test_notebooks_are_committed_as_a_student_should_see_them():
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        assert not [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])], path.name
        assert sum("parameters" in c["metadata"].get("tags", []) for c in cells) == 1, path.name
        code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
        steer = ("os.environ", "FERNB_EPOCHS", "FERNB_NOTEBOOK_TEST", "pytest")
        assert not [s for s in code if any(w in s for w in steer)], path.name  # no cell for the test suite
        text = "".join("".join(c["source"]) for c in cells[-3:] if c["cell_type"] == "markdown")  # the chapter's end
        assert all(h in text for h in ("## Summary", "## Exercises", "## Further reading")), path.name
