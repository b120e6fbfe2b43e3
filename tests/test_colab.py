"""The notebooks as Colab runs them: a fresh runtime with google.colab, no data, the data downloaded once and reused."""
from __future__ import annotations

import json
import os
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
    """A stub google.colab (drive.mount included) on the kernel's path and a local git repository of faces; each
    notebook then runs in a runtime() of its own, as on Colab."""
    stub = tmp_path / "stub" / "google" / "colab"  # 'google' stays a namespace package: protobuf lives there too
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("")
    (stub / "files.py").write_text("def upload():\n    return {}\n")
    (stub / "output.py").write_text("def eval_js(code):\n    raise RuntimeError('no browser in a test')\n")
    (stub / "drive.py").write_text("import os\n\ndef mount(path):\n    os.makedirs(os.path.join(path, 'MyDrive'), "
                                   "exist_ok=True)\n")
    repo = git_repo_of_faces(tmp_path / "repo", per_class=10)
    for name in ("FERNB_DATA", "FERNB_CHECKPOINT", "FERNB_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "stub"))
    monkeypatch.setenv("FERNB_DATA_URL", str(repo))
    monkeypatch.setenv("FERNB_EPOCHS", "1")  # notebook 03: a quick run
    monkeypatch.setenv("FERNB_DRIVE_MOUNT", str(tmp_path / "drive"))  # one Google Drive for every runtime
    return tmp_path


def run(path: Path, root: Path, **params):
    """Execute a notebook the way Colab's Run all does: in a runtime of its own, a fresh machine with an empty
    working folder and empty home folders, where nothing of another notebook's runtime is."""
    runtime = root / f"runtime-{path.stem}"
    runtime.mkdir()
    env = {"XDG_DATA_HOME": str(runtime / "home-data"), "XDG_CACHE_HOME": str(runtime / "home-cache")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return papermill.execute_notebook(str(path), str(runtime / f"out-{path.name}"), cwd=str(runtime),
                                          parameters=params, progress_bar=False, kernel_name="python3")
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def test_each_notebook_in_its_own_runtime_gets_its_data_and_runs_to_the_end(colab):
    outputs = {path.name[:2]: text_of(run(path, colab)) for path in NOTEBOOKS}  # papermill raises if a cell fails
    for key in ("01", "02", "03", "04", "05"):  # a fresh machine each: each downloads for itself
        assert "downloading it into" in outputs[key], key
    assert not any("synthetic cartoon faces" in t for t in outputs.values())
    for key in ("04", "05"):  # 03's run is on another machine: said in plain view, with what stands in
        assert "no run of notebook 03" in outputs[key] and "its own machine" in outputs[key], key
    # the packaged model trained on FER-2013, not on these faces: no twin count against faces it never saw
    assert "this section is skipped" in outputs["04"] and "faces with a near-twin in train" not in outputs["04"]


def test_with_persist_on_drive_the_data_comes_once_and_04_shows_the_run_03_trained(colab):
    drive = colab / "drive" / "MyDrive" / "fernb"
    by_key = {path.name[:2]: path for path in NOTEBOOKS}
    first = text_of(run(by_key["01"], colab, persist=True))
    assert "downloading it into" in first and len(list((drive / "data" / "fer2013" / "train").rglob("*.png"))) == 70
    trained = text_of(run(by_key["03"], colab, persist=True))
    assert "downloading it into" not in trained and (drive / "runs" / "latest" / "config.json").is_file()
    shown = text_of(run(by_key["04"], colab, persist=True))
    assert f"your run ({drive / 'runs' / 'latest'})" in shown and "no run of notebook 03" not in shown


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
