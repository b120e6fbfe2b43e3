"""What the notebooks need around the lesson: where they run, the data arriving by itself, photos, visible notices."""
from __future__ import annotations

import importlib.util
import io
import json
import os
from pathlib import Path

import numpy as np

from fernb.sources import DEFAULT_ROOT, resolve_source
from fernb.errors import FernbError


def on_colab() -> bool:
    """True in a Google Colab runtime."""
    return importlib.util.find_spec("google") is not None and importlib.util.find_spec("google.colab") is not None


def say(text: str) -> None:
    """Show text as Markdown in the notebook: the 'what we saw' lines built from a run's own numbers."""
    try:
        from IPython.display import Markdown, display
        display(Markdown(text))
    except ImportError:
        print(text)


class ClaimError(AssertionError):
    """A sentence that a notebook's own numbers no longer support: the notebook stops instead of printing it."""


def claim(holds: bool, sentence: str, otherwise: str | None = None) -> str:
    """The sentence the numbers support, computed from the same object the figure draws: `sentence` when `holds`,
    else `otherwise`; with no `otherwise`, a rerun on other data whose numbers break the claim fails right here,
    so no notebook ever prints a sentence that is false about its figure."""
    if holds:
        return sentence
    if otherwise is None:
        raise ClaimError(f"the numbers above no longer support this sentence: {sentence!r}")
    return otherwise


def points(a: float, b: float) -> float:
    """a - b in percentage points, from the two shares as a sentence prints them (to 0.1%): the difference it states
    is then the one a reader computes from the two numbers beside it."""
    return round(round(100 * a, 1) - round(100 * b, 1), 1)


def the(name: str) -> str:
    """A model's name as a sentence uses it: 'your run (runs/latest)', but 'the packaged model'."""
    return name if name.startswith("your") else f"the {name}"


def notice(text: str) -> None:
    """Show a notice in the notebook's own output, in plain view (not on stderr alone)."""
    say(f"> **Note:** {text}")


def persist(keep: bool) -> Path | None:
    """keep=True on Colab: mount Google Drive and keep the data and runs in MyDrive/fernb, so that they outlive the
    runtime (Colab gives each notebook its own machine); returns that folder, or None where nothing is mounted."""
    if not keep:
        return None
    if not on_colab():
        notice("`persist = True` mounts Google Drive on Colab; here the data and runs stay where they are.")
        return None
    from google.colab import drive
    mount = Path(os.environ.get("FERNB_DRIVE_MOUNT", "/content/drive"))  # the tests mount a folder of their own
    drive.mount(str(mount))
    home = mount / "MyDrive" / "fernb"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["FERNB_HOME"] = str(home)  # data_home and runs_dir read it, in this notebook's kernel
    notice(f"Google Drive is mounted: FER-2013 and your runs are kept in `{home}`, for every notebook of the series.")
    return home


def data_home() -> Path:
    """Where the notebooks keep FER-2013: $FERNB_HOME/data/fer2013 (Drive, with persist), else the repo's data/ inside a
    clone of fernb, else the user's data folder, so that each notebook of the series finds what one downloaded."""
    if os.environ.get("FERNB_HOME"):
        return Path(os.environ["FERNB_HOME"]) / DEFAULT_ROOT
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "fernb" / "__init__.py").is_file():
            return folder / DEFAULT_ROOT
    from platformdirs import user_data_dir
    return Path(user_data_dir("fernb")) / "fer2013"


def runs_dir() -> Path:
    """Where notebook 03 writes its runs and 04-05 look for them: $FERNB_HOME/runs (Drive, with persist), else runs/."""
    return Path(os.environ["FERNB_HOME"]) / "runs" if os.environ.get("FERNB_HOME") else Path("runs")


def get_data(data: str | None = None, download: bool = True) -> str:
    """The data a notebook reads: data, else $FERNB_DATA, else ./data/fer2013, else data_home() (the repo's data/,
    Drive's, or the user's); else, unless download=False, `fernb download` into data_home() once, with a progress
    bar; else (offline) the synthetic faces, with a notice in the notebook's output."""
    source = resolve_source(data)  # data, $FERNB_DATA, ./data/fer2013, else "synthetic": the CLI's order
    if source == "synthetic" and (data or os.environ.get("FERNB_DATA")):
        notice("synthetic cartoon faces stand in for FER-2013, as asked: every number and figure below is about them.")
        return source
    if source != "synthetic":
        return source
    home = data_home()
    return str(home) if home.is_dir() else fetch_or_stand_in(home, download)


def fetch_or_stand_in(home: Path, download: bool) -> str:
    """Download FER-2013 into home (nothing half-written if it fails), else the synthetic faces with a notice."""
    from fernb.download import EXPECTED, REPO_URL
    from fernb.download import download as fetch
    url = os.environ.get("FERNB_DATA_URL", REPO_URL)  # a mirror of your own (its counts are not checked)
    if download:
        notice(f"FER-2013 is not here yet: downloading it into `{home}` (35,887 faces, about 60 MB, from {url}; "
               "once, then every notebook finds it there).")
        try:
            return str(fetch(home, url=url, expected=EXPECTED if url == REPO_URL else None))
        except FernbError as e:
            notice(f"the download failed ({e}).")
    notice("no FER-2013 found, so **synthetic cartoon faces** stand in: every number and figure below is about "
           f"them, not FER-2013. Get the data with `fernb download {home}`, or pass `data=` to this notebook.")
    return "synthetic"


def models_to_show(given: str | os.PathLike | None = None) -> dict[str, Path]:
    """The checkpoints notebooks 04 and 05 show, the student's run first; says in plain view when there is no run
    of notebook 03 to show, and what stands in for it."""
    from fernb.checkpoint import CONFIG, checkpoints
    latest = runs_dir() / "latest"
    found = checkpoints(given, latest)
    if given is None and not (latest / CONFIG).is_file():
        why = (" Colab gives each notebook its own machine, so notebook 03's run is not here: set `persist = True` in "
               "03 and here to keep it on Google Drive." if on_colab() else " Run notebook 03 first to see your own.")
        notice(f"no run of notebook 03 in `{latest}`, so this notebook shows the {next(iter(found))}.{why}")
    return found


def budget(epochs: int | None, minutes: float | None) -> tuple[int, float | None]:
    """Notebook 03's (epochs, minutes) for TrainConfig: exactly `epochs` epochs when it is set (minutes None), else
    the `minutes` budget; the suite's quick run ($FERNB_EPOCHS, set by the tests and CI) overrides both, in the
    set-up cell, so that no lesson line holds a test hook."""
    if os.environ.get("FERNB_EPOCHS"):
        return int(os.environ["FERNB_EPOCHS"]), None
    if epochs is not None:
        return epochs, None
    if minutes is None:
        raise FernbError("epochs = None and minutes = None: set one of them in the parameters cell")
    from fernb.train import TrainConfig
    return TrainConfig.epochs, minutes  # with a budget, epochs is not read: the schedule spans the minutes


MADE_BY = "notebook 03"  # what notebook 03 records in its run's config.json, so that it replaces only its own runs


def run_folder(out: str | os.PathLike) -> tuple[str, bool]:
    """Where notebook 03 writes its run, and whether it may overwrite what is there: out itself when it is free or
    holds this notebook's previous run; else a new folder beside it, said in plain view (another run is kept)."""
    from fernb.checkpoint import CONFIG
    from fernb.files import check_run_folder
    path = Path(out)
    for n in range(1000):  # out, then out-1, out-2, ...: the first that is free or this notebook's own
        candidate = path if n == 0 else path.with_name(f"{path.name}-{n}")
        try:
            if json.loads((candidate / CONFIG).read_text()).get("made_by") == MADE_BY:
                return str(candidate), True
        except (OSError, ValueError, AttributeError):
            pass  # no run there, or not one of this notebook's
        try:
            check_run_folder(candidate)
        except FernbError:
            continue
        if n:
            notice(f"`{path}` holds a run this notebook did not start (a `fernb train`, say), and it stays as it "
                   f"is: this run goes to `{candidate}`. Pass `checkpoint=\"{candidate}\"` to notebooks 04 and 05.")
        return str(candidate), False
    raise FernbError(f"{path}: a thousand run folders beside it are taken; clean up or pass another out")


def uploader():
    """Ask for a photo: Colab's file picker (it waits for the choice), or in JupyterLab a FileUpload widget."""
    if on_colab():
        from google.colab import files
        return files.upload()
    import ipywidgets
    widget = ipywidgets.FileUpload(accept="image/*", multiple=False, description="Upload a photo")
    notice("pick a photo with the button below, then run the next cells.")
    return widget


def choose_photo(photo: str | None = None, webcam: bool = False, upload=None) -> tuple[np.ndarray, str]:
    """The photo to analyse and its name: the photo file given, a webcam snapshot (Colab), an uploaded photo,
    or else scikit-image's astronaut sample (a real photograph that ships offline)."""
    from fernb.faces import colab_snapshot, read_photo
    if photo:
        return read_photo(photo), str(photo)
    if webcam:
        if on_colab():
            return read_photo(colab_snapshot("snapshot.jpg")), "webcam snapshot"
        notice("the webcam snapshot works on Colab; here, pass photo= or upload=True.")
    chosen = _uploaded(upload)
    if chosen is not None:
        return chosen
    from skimage import data as samples
    return samples.astronaut(), "scikit-image's astronaut sample"


def _uploaded(upload) -> tuple[np.ndarray, str] | None:
    """The photo in Colab's upload result ({name: bytes}) or in a FileUpload widget, if any."""
    from PIL import Image
    if isinstance(upload, dict) and upload:
        name, content = next(iter(upload.items()))
    elif upload is not None and getattr(upload, "value", None):
        item = upload.value[0] if isinstance(upload.value, (list, tuple)) else next(iter(upload.value.values()))
        name, content = item["name"], bytes(item["content"])
    else:
        return None
    return np.asarray(Image.open(io.BytesIO(content)).convert("RGB")), name
