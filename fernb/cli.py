"""`fernb` on the command line: one argparse parser over the package; errors print one line and exit with status 2."""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

from fernb import __version__, checkpoint, faces, ferplus, video
from fernb.data import IMAGE_SIZE, FERData, describe, load_train_val, read_pool, resolve_source
from fernb.download import REPO_URL, download
from fernb.errors import DataError, FernbError, OutputError, check_number
from fernb.evaluate import Predictor, load_split, metrics, predict
from fernb.files import atomic_write, check_output, check_run_folder, unique_names
from fernb.train import PRECISIONS, STATE, TrainConfig, fit

# the `fernb train` options that set a TrainConfig field; None in args: not given, TrainConfig's default
TRAIN_OPTIONS = ("model", "epochs", "minutes", "batch_size", "lr", "seed", "class_weights", "pretrained", "init",
                 "device", "precision")
DATA_HELP = ("FER-2013 folder (ROOT/{train,test}/<class>/, or a flat ROOT/<class>/ taken as a test split; any of the "
             "classes, under their own or the usual other names), fer2013.csv or 'synthetic' (default: $FERNB_DATA, "
             "./data/fer2013)")
SKIP_HELP = "leave out the faces of classes the model does not have (contempt, say), and say how many"
CHECKPOINT_HELP = "checkpoint directory (default: $FERNB_CHECKPOINT, the packaged model, else runs/latest)"


def json_text(obj) -> str:
    """obj as JSON that every reader parses: a number that is not finite (NaN, infinity) becomes null."""
    def finite(o):
        if isinstance(o, float) and not math.isfinite(o):
            return None
        if isinstance(o, dict):
            return {k: finite(v) for k, v in o.items()}
        return [finite(v) for v in o] if isinstance(o, (list, tuple)) else o
    return json.dumps(finite(obj), indent=1, allow_nan=False)


def cmd_info(args: argparse.Namespace) -> None:
    """Print the layout, counts per split and class, and image size of a source."""
    info = describe(source_pool(args), args.val_fraction, args.seed)
    if args.json:
        print(json_text(info))
        return
    print(f"source: {info['source']} ({info['layout']}), images {info['total']}, "
          f"size {info['image_size'][0]}x{info['image_size'][1]}, classes {len(info['classes'])}")
    print("split".ljust(12) + "".join(c[:8].rjust(9) for c in info["classes"]) + "total".rjust(8))
    for split, s in info["splits"].items():
        print(split.ljust(12) + "".join(str(n).rjust(9) for n in s["per_class"].values()) + str(s["total"]).rjust(8))


def source_pool(args: argparse.Namespace):
    """The faces of --data, with FER+'s labels when --labels names fer2013new.csv."""
    if args.labels:
        return ferplus.read_pool(resolve_source(args.data), args.labels, args.label_mode)
    return read_pool(args.data)


def add_data_options(s) -> None:
    """--data, and FER+'s --labels and --label-mode beside it: info, train and evaluate take all three."""
    s.add_argument("--data", help=DATA_HELP)
    s.add_argument("--labels", metavar="FER2013NEW_CSV", help="FER+ labels (microsoft/FERPlus's fer2013new.csv), "
                   "paired row by row with --data fer2013.csv: 8 classes, contempt included")
    s.add_argument("--label-mode", choices=ferplus.MODES, default="majority", help="FER+ labels: the majority's "
                   "emotion (default; faces without one dropped), or the vote distribution as soft targets")


def cmd_download(args: argparse.Namespace) -> None:
    """Fetch FER-2013's folder layout into DEST and verify the counts."""
    dest = download(args.dest, url=args.url)
    print(f"FER-2013 is in {dest}; try: fernb info --data {dest}")


def train_config(args: argparse.Namespace, out: Path) -> tuple[TrainConfig, dict]:
    """The run's TrainConfig and hold-out: from the options given, or with --resume the saved run's own."""
    given = {k: getattr(args, k) for k in TRAIN_OPTIONS if getattr(args, k) is not None}
    if args.resume:
        return saved_run(out, given, args.val_fraction)
    recipe = TrainConfig.short if given.get("minutes") else TrainConfig  # a time budget: the short-run recipe
    cfg = recipe(**given)  # checks every option first
    return cfg, {"val_fraction": 0.1 if args.val_fraction is None else args.val_fraction, "seed": cfg.seed}


def saved_run(out: Path, given: dict, val_fraction: float | None) -> tuple[TrainConfig, dict]:
    """The config and hold-out of the run saved in out, refusing options that would change it."""
    if not (out / STATE).is_file() or not (out / checkpoint.CONFIG).is_file():
        raise OutputError(f"{out}: holds no run to resume (no {STATE}); drop --resume to start a new run there")
    meta = checkpoint.read_meta(out)
    if not isinstance(meta.get("config"), dict):
        raise OutputError(f"{out}: its config.json holds no training config to resume; drop --resume to start anew")
    cfg = TrainConfig.from_dict(meta["config"])
    holdout = meta.get("holdout") or {"val_fraction": 0, "seed": cfg.seed}  # no val: the same all-of-train split
    given = {**given, **({"val_fraction": val_fraction} if val_fraction is not None else {})}
    saved = {**vars(cfg), "val_fraction": holdout["val_fraction"]}
    changed = [f"--{k.replace('_', '-')} {v} (the run has {saved[k]})" for k, v in given.items()
               if v != saved[k] and not (k == "model" and v == "auto")]
    if changed:
        raise OutputError(f"{out}: --resume continues the run with its own options, but {', '.join(changed)} would "
                          "change it; drop them, or start a new run with another --out")
    return cfg, holdout


def cmd_train(args: argparse.Namespace) -> None:
    """Train a model on a source's train split, select on val, save a checkpoint directory."""
    inputs = [resolve_source(args.data), *[p for p in (args.init, args.pretrained, args.labels) if isinstance(p, str)]]
    out = check_output(args.out or checkpoint.RUNS_DEFAULT, folder=True, inputs=inputs)
    cfg, holdout = train_config(args, out)  # every option checked first
    check_run_folder(out, args.resume, args.force)  # before reading the data: fit claims it again, and locks it
    train, val = load_train_val(pool=source_pool(args), **holdout)
    summary = fit(train, val, cfg, out=out, resume=args.resume, progress=not args.json, force=args.force)
    summary.pop("network")
    if args.json:
        print(json_text(summary))
        return
    best = summary["best_val_acc"]
    kept = f"best val acc {best:.4f}" if best is not None else "all of train, no val hold-out: last epoch kept"
    print(f"trained {summary['epochs_run']} epochs in {summary['seconds'] / 60:.1f} min; {kept}; checkpoint: {out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Accuracy, macro-F1, per-class scores and confusion matrix of a checkpoint on one split."""
    model, meta = checkpoint.load_model(args.checkpoint)
    # FER+ labels make a pool of their own; else load_split reads the data after checking the split can be scored
    data = load_split(meta, args.data, args.split, pool=source_pool(args) if args.labels else None)
    if args.skip_unknown:
        data = only_classes(data, meta["classes"])
    if not len(data):
        raise DataError(f"{data.source}: no faces left to score in split {args.split!r}; point --data at faces of "
                        f"the model's classes ({', '.join(meta['classes'])})")
    m = metrics(predict(model, data, tta=args.tta))
    m.update(split=args.split, tta="flip" if args.tta else None, model=meta["model"], source=data.source)
    if args.json:
        print(json_text(m))
        return
    lo, hi = m["accuracy_ci"] or (float("nan"),) * 2
    print(f"{meta['model']} on {data.source} [{args.split}{', flip TTA' if args.tta else ''}]: "
          f"accuracy {m['accuracy']:.4f} (95% interval {lo:.4f}-{hi:.4f}), macro-F1 {m['macro_f1']:.4f}, n={m['n']}")
    print("class".ljust(10) + "precision".rjust(10) + "recall".rjust(8) + "95% interval".rjust(14) + "f1".rjust(8)
          + "n".rjust(6))
    for c, r in m["per_class"].items():
        ci = "{:.3f}-{:.3f}".format(*r["recall_ci"]) if r["recall_ci"] else "-"
        print(c.ljust(10) + f"{r['precision']:10.3f}{r['recall']:8.3f}{ci:>14}{r['f1']:8.3f}{r['support']:6d}")
    print("confusion (rows = true, columns = predicted):")
    print(" " * 10 + "".join(c[:5].rjust(6) for c in m["classes"]))
    for c, row in zip(m["classes"], m["confusion"]):
        if c in m["per_class"]:  # a class the faces lack has an empty row
            print(c[:8].ljust(10) + "".join(str(v).rjust(6) for v in row))


def only_classes(data: FERData, classes) -> FERData:
    """data without the faces of classes outside `classes` (a model's), saying how many were left out."""
    keep = torch.tensor([data.classes[k] in classes for k in data.labels.tolist()], dtype=torch.bool)
    gone = sorted({data.classes[k] for k in data.labels[~keep].tolist()})
    if gone:
        print(f"fernb: {data.source}: left out {int((~keep).sum())} faces of {', '.join(gone)}, a class the model "
              "does not have (--skip-unknown)", file=sys.stderr)
    kept = tuple(c for c in data.classes if c in classes)
    to_kept = torch.tensor([kept.index(c) if c in kept else -1 for c in data.classes], dtype=torch.long)
    return replace(data, images=data.images[keep], labels=to_kept[data.labels[keep]], classes=kept)


def cmd_predict(args: argparse.Namespace) -> int:
    """Faces in photos and videos: boxes and class probabilities; the batch goes on past bad files (exit 2 after)."""
    video.check_options(args.every, args.fps, args.smooth)
    outputs = plan_outputs(args)
    model, meta = checkpoint.load_model(args.checkpoint)
    predictor = Predictor(model, meta["classes"])  # once for every photo and frame
    results, failed = [], 0
    for path, (annotated, csv_path) in zip(args.images, outputs):
        try:
            results.append(predict_video(args, predictor, path, annotated, csv_path) if video.is_video(path)
                           else predict_photo(args, predictor, path, annotated))
        except FernbError as e:
            print(f"fernb: error: {e}", file=sys.stderr)
            results.append({"image": path, "error": str(e), "faces": []})
            failed += 1
    if args.json:
        print(json_text(results))
    return 2 if failed else 0


def plan_outputs(args: argparse.Namespace) -> list[tuple[Path | None, Path | None]]:
    """Each input's (annotated file, CSV file), checked before any work: none is an input or exists already
    (unless --force), and inputs that share a name from two folders get two outputs."""
    videos = [p for p in args.images if video.is_video(p)]
    args.csv, args.annotate = (os.path.expanduser(p) if p else p for p in (args.csv, args.annotate))
    if args.csv:
        check_output(args.csv, folder=len(videos) > 1, inputs=args.images, force=args.force or len(videos) > 1)
    if args.annotate:
        check_output(args.annotate, folder=True, inputs=args.images)
    names, csv_names = iter(unique_names(args.images, "_annotated")), iter(unique_names(videos, ".csv"))
    outputs = []
    for path in args.images:
        is_video, name = video.is_video(path), next(names)
        annotated = Path(args.annotate) / (name + (".mp4" if is_video else ".jpg")) if args.annotate else None
        csv_path = None if not (is_video and args.csv) else Path(args.csv) / next(csv_names) if len(videos) > 1 \
            else Path(args.csv)
        for out in (annotated, csv_path if len(videos) > 1 else None):
            if out is not None:
                check_output(out, folder=False, inputs=args.images, force=args.force)
        outputs.append((annotated, csv_path))
    if args.annotate:
        Path(args.annotate).mkdir(parents=True, exist_ok=True)
    return outputs


def predict_photo(args: argparse.Namespace, predictor: Predictor, path: str, annotated: Path | None) -> dict:
    """One photo: every face's box and probabilities, printed (or returned for --json) and drawn with --annotate."""
    photo = faces.read_photo(path)
    found, how = ([], "crop") if args.crops else (faces.predict_faces(predictor, photo, predictor.classes), "detected")
    if not found and (args.crops or max(photo.shape[:2]) <= faces.CROP_SIDE):
        if not args.crops:  # plainly a face crop (a small picture, no face found in it): say what was done
            print(f"fernb: {path}: no face found in this {photo.shape[1]}x{photo.shape[0]} picture, so it is classified "
                  "whole, as a face crop (--crops does so for every input)", file=sys.stderr)
        found, how = faces.predict_whole(predictor, photo, predictor.classes), "crop"
    elif not found:
        print(f"fernb: {path}: no face found; try a larger, frontal, well-lit face", file=sys.stderr)
    if annotated:
        atomic_write(annotated, lambda tmp: faces.annotate(photo, found).save(tmp, quality=92))
    for i, f in enumerate([] if args.json else found):
        top = sorted(f["probs"].items(), key=lambda kv: -kv[1])[:3]
        where = "(the whole picture, a face crop)" if how == "crop" else f"face {i} at {f['box']}"
        print(f"{path} {where}: " + ", ".join(f"{c} {p:.0%}" for c, p in top))
    return {"image": path, "size": [photo.shape[1], photo.shape[0]], "path": how, "faces": found}


def predict_video(args: argparse.Namespace, predictor: Predictor, path: str, annotated: Path | None,
                  csv_path: Path | None) -> dict:
    """One video: a row per face per analysed frame, into --csv (a folder of <video>.csv for several videos)."""
    rows = video.analyse(predictor, path, predictor.classes, args.every, args.fps, args.smooth, annotated)
    if csv_path:
        video.write_csv(rows, csv_path, predictor.classes)
    ids = sorted({r["face_id"] for r in rows})
    if not rows:
        print(f"fernb: {path}: no face found in any analysed frame" + (f"; wrote an empty {csv_path}" if csv_path
                                                                           else ""), file=sys.stderr)
    elif not args.json:
        print(f"{path}: {len(rows)} face rows, {len(ids)} face id(s)" + (f"; wrote {csv_path}" if csv_path else ""))
    return {"video": path, "csv": str(csv_path) if csv_path else None, "faces": len(ids), "rows": rows}


def cmd_export(args: argparse.Namespace) -> None:
    """Export a checkpoint to ONNX and check that onnxruntime agrees with torch."""
    from fernb.export import export_onnx, onnx_parity  # onnx: only this command needs it
    out = check_output(args.out, folder=False, inputs=[args.checkpoint or checkpoint.default_checkpoint()],
                       force=args.force)
    model, meta = checkpoint.load_model(args.checkpoint)
    out = export_onnx(model, out)
    pixels = torch.randint(0, 256, (16, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    diff = onnx_parity(model, out, pixels)
    print(f"wrote {out} ({meta['model']}); input 'pixels' [B,1,{IMAGE_SIZE},{IMAGE_SIZE}] 0..255, output 'probs' "
          f"[B,{len(meta['classes'])}] in class order {','.join(meta['classes'])}; max |onnxruntime - torch| = {diff:.2e}")


def cmd_demo(args: argparse.Namespace) -> None:
    """Serve the live demo in the browser until Ctrl-C."""
    from fernb.demo import LOCAL, launch  # gradio: an optional extra
    check_number("port", args.port, 1, 65536, whole=True)
    if args.host not in LOCAL:
        print(f"fernb: WARNING: --host {args.host} serves the demo, webcam frames included, to other computers "
              "that can reach this one; use the default 127.0.0.1 to keep it on this machine", file=sys.stderr)
    print(f"fernb demo on http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True)
    launch(args.checkpoint, host=args.host, port=args.port)


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line like every other fernb error (no usage block before it)."""

    def error(self, message: str):
        self.exit(2, f"fernb: error: {self.prog}: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    """fernb's one parser: a subcommand each, its options in groups, as `fernb COMMAND --help` lists them."""
    p = Parser(prog="fernb", description="Facial expression recognition on FER-2013.")
    p.add_argument("--version", action="version", version=f"fernb {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="show what a data source holds")
    add_data_options(s)
    s.add_argument("--val-fraction", type=float, default=0.1, help="hold-out carved from train (default 0.1)")
    s.add_argument("--seed", type=int, default=0, help="seed of that hold-out (default 0)")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("download", help="fetch FER-2013 in the public folder layout")
    s.add_argument("dest", help="folder to create, e.g. data/fer2013")
    s.add_argument("--url", default=REPO_URL, help="git repository holding train/ and test/")
    s.set_defaults(func=cmd_download)

    add_train_parser(sub)

    s = sub.add_parser("evaluate", help="score a checkpoint on one split")
    add_data_options(s)
    s.add_argument("--skip-unknown", action="store_true", help=SKIP_HELP)
    s.add_argument("--split", default="test", help="train, val, test, publictest or privatetest (default test)")
    s.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    s.add_argument("--tta", action="store_true", help="average each face with its mirror image")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_evaluate)

    add_predict_parser(sub)
    add_model_parsers(sub)
    return p


def add_model_parsers(sub) -> None:
    """`fernb demo` and `fernb export`: a trained model served in the browser, or written as ONNX."""
    s = sub.add_parser("demo", help="a live demo in the browser: webcam and photos (needs the demo extra)")
    s.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    s.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this computer only)")
    s.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("export", help="export a checkpoint to ONNX")
    s.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    s.add_argument("--out", required=True, help="the .onnx file to write")
    s.add_argument("--force", action="store_true", help="overwrite --out when it exists")
    s.set_defaults(func=cmd_export)


def add_train_parser(sub) -> None:
    """`fernb train`: the options left out are TrainConfig's defaults, and TrainConfig checks every value."""
    d = TrainConfig()
    s = sub.add_parser("train", help="train a model; the kept epoch is chosen on val")
    g = s.add_argument_group("data")
    add_data_options(g)
    g.add_argument("--val-fraction", type=float, help="hold-out carved from train for selection (default 0.1); "
                   "0: all of train, last epoch kept")
    g = s.add_argument_group("model and recipe")
    g.add_argument("--model", help="fernet_s, fernet_m, fernet, fernet_l or any timm name (default auto: fernet_l, "
                   "the default recipe; with a --minutes budget on a CPU, the widest FERNet measured to get ~40 "
                   "epochs in it)")
    budget = g.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help=f"number of epochs (default {d.epochs})")
    budget.add_argument("--minutes", type=float, help="a time budget instead of epochs; the schedule spans it, and "
                        "the recipe is the short-run one (TrainConfig.short: weight decay 0.01, no dropout, no erasing)")
    g.add_argument("--batch-size", type=int, help=f"faces per step (default {d.batch_size})")
    g.add_argument("--lr", type=float, help=f"peak learning rate of the one-cycle schedule (default {d.lr})")
    g.add_argument("--seed", type=int, help="seed of the run and of its val hold-out (default 0)")
    g.add_argument("--class-weights", action="store_true", default=None, help="weight the loss by inverse class "
                   "frequency")
    g.add_argument("--init", metavar="CHECKPOINT", help="fine-tune: start from a checkpoint's weights ('packaged': "
                   "fernb's own model); the classifier is new when your classes differ")
    g.add_argument("--pretrained", nargs="?", const=True, metavar="FILE", help="fine-tune a timm --model from its "
                   "ImageNet weights (downloaded once), or from a local weights FILE; the grey input is folded in")
    g = s.add_argument_group("where it runs")
    g.add_argument("--device", help="auto (cuda, then mps, then cpu; the default), cpu, cuda, cuda:N or mps")
    g.add_argument("--precision", choices=PRECISIONS, help="default auto: bf16 or fp16 where the device runs it "
                   "natively and fast, else fp32")
    g = s.add_argument_group("output")
    g.add_argument("--out", help=f"checkpoint directory (default {checkpoint.RUNS_DEFAULT})")
    g.add_argument("--resume", action="store_true", help="continue the run saved in --out, with its own options")
    g.add_argument("--force", action="store_true", help="overwrite the checkpoint of another run in --out")
    g.add_argument("--json", action="store_true", help="print the run summary as JSON (no progress bars)")
    s.set_defaults(func=cmd_train)


def add_predict_parser(sub) -> None:
    """`fernb predict`: photos and videos, with the video options in a group of their own."""
    s = sub.add_parser("predict", help="detect faces in photos and videos and classify their expressions")
    s.add_argument("images", nargs="+", help="photo files (JPEG, PNG, ...) and video files (MP4, AVI, ...)")
    s.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    s.add_argument("--annotate", metavar="OUT_DIR", help="write each photo or video with boxes and labels into OUT_DIR")
    s.add_argument("--json", action="store_true", help="print JSON: per file, every face's box and probabilities")
    s.add_argument("--crops", action="store_true", help="the photos are face crops already (CK+, FER-2013, your own "
                   "cut-outs): classify each whole, grey and resized to 48x48, without face detection")
    s.add_argument("--force", action="store_true", help="overwrite annotated files and CSVs that exist already")
    g = s.add_argument_group("videos")
    g.add_argument("--csv", help="one row per face per analysed frame (time_s, frame, face_id, x, y, w, h, the class "
                   "probabilities) into this file; a folder for several videos")
    sampling = g.add_mutually_exclusive_group()
    sampling.add_argument("--every", type=int, default=1, help="analyse every N-th frame (default 1)")
    sampling.add_argument("--fps", type=float, help="analyse about this many frames per second")
    g.add_argument("--smooth", type=float, default=0.0, help="blend each face's probabilities with its previous "
                   "ones, 0 (off, default) to 0.99")
    s.set_defaults(func=cmd_predict)


def main(argv: list[str] | None = None) -> int:
    """The `fernb` command: parse, run the subcommand, and turn every user error into one line and exit 2."""
    if hasattr(sys.stdout, "reconfigure"):  # a file name that is not UTF-8 prints with \x escapes, as on stderr
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, or a bad option (argparse has printed its line)
        return e.code or 0
    try:
        return args.func(args) or 0
    except FernbError as e:
        print(f"fernb: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fernb: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `fernb evaluate | head`: the reader left, which is not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's recipe: no second error at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
