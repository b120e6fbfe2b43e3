"""Execute the notebooks on real FER-2013 with papermill and keep their outputs in place (what is committed).

    FERNB_DATA=../shared/fer2013 python scripts/run_notebooks.py            # all six, with their default parameters
    FERNB_DATA=../shared/fer2013 python scripts/run_notebooks.py 04 05      # only some

Progress-bar widgets are dropped from the saved outputs: without a live kernel they render as a frozen "0%".
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import papermill

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PARAMS: dict[str, dict] = {}  # the committed outputs use each notebook's defaults: what a student's Run all does
WIDGET = "application/vnd.jupyter.widget-view+json"


def strip_widgets(path: Path, parameters: dict) -> None:
    """Remove progress-bar widget outputs, and papermill's injected-parameters cell, from an executed notebook:
    the committed notebook keeps its parameters cell as a student should see it, and its metadata the parameters
    this run was given (papermill leaves an earlier run's there when it is given none)."""
    nb = nbformat.read(path, as_version=4)
    nb.metadata.setdefault("papermill", {})["parameters"] = parameters
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for key in ("input_path", "output_path"):  # this machine's paths mean nothing to a reader
        if key in nb.metadata.get("papermill", {}):
            nb.metadata.papermill[key] = path.name
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET not in o.get("data", {})]
    nbformat.write(nb, path)


def main() -> None:
    """Run the chosen notebooks (default: all) in order, in place."""
    if not os.environ.get("FERNB_DATA"):
        sys.exit("set FERNB_DATA to the FER-2013 folder: committed outputs come from the real data")
    os.environ["FERNB_DATA"] = str(Path(os.environ["FERNB_DATA"]).resolve())  # the notebooks run in notebooks/
    os.environ.pop("FERNB_EPOCHS", None)
    os.environ.pop("FERNB_CHECKPOINT", None)
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    wanted = sys.argv[1:]
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        if wanted and not any(path.name.startswith(w) for w in wanted):
            continue
        print(f"running {path.name}", flush=True)
        papermill.execute_notebook(str(path), str(path), parameters=PARAMS.get(path.name, {}), cwd=str(NOTEBOOKS),
                                   progress_bar=False, kernel_name="python3")
        strip_widgets(path, PARAMS.get(path.name, {}))


if __name__ == "__main__":
    main()
