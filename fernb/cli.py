"""`fernb` on the command line: thin argparse over the package; errors print one line and exit with status 2."""
from __future__ import annotations

import argparse
import json
import os
import sys

from pathlib import Path

from fernb.data import IMAGE_SIZE
from fernb.errors import ConfigError, FernbError, OutputError
from fernb.files import check_output


def cmd_info(args: argparse.Namespace) -> None:
    """Print the layout, counts per split and class, and image size of a source."""
    from fernb.data import describe, read_pool
    info = describe(read_pool(args.data), args.val_fraction, args.seed)
    if args.json:
        print(json.dumps(info, indent=2))
        return
    print(f"source: {info['source']} ({info['layout']}), images {info['total']}, "
          f"size {info['image_size'][0]}x{info['image_size'][1]}, classes {len(info['classes'])}")
    header = "split".ljust(12) + "".join(c[:8].rjust(9) for c in info["classes"]) + "total".rjust(8)
    print(header)
    for split, s in info["splits"].items():
        print(split.ljust(12) + "".join(str(n).rjust(9) for n in s["per_class"].values()) + str(s["total"]).rjust(8))


def cmd_download(args: argparse.Namespace) -> None:
    """Fetch FER-2013's folder layout into DEST and verify the counts."""
    from fernb.download import download
    dest = download(args.dest, url=args.url)
    print(f"FER-2013 is in {dest}; try: fernb info --data {dest}")


def train_config(args: argparse.Namespace, out: Path):
    """The TrainConfig for `fernb train`: from the options, or with --resume the run's own saved config."""
    from fernb import checkpoint
    from fernb.train import STATE, TrainConfig
    if not args.resume:
        recipe = TrainConfig.short if args.minutes else TrainConfig  # a time budget: the short-run recipe
        cfg = recipe(model=args.model, epochs=args.epochs, minutes=args.minutes, batch_size=args.batch_size,
                     lr=args.lr, seed=args.seed, class_weights=args.class_weights, device=args.device,
                     precision=args.precision)  # checks every option first
        if (out / checkpoint.CONFIG).exists() and not args.force:
            raise OutputError(f"{out}: holds the checkpoint of another run; pass --resume to continue it, --force to "
                              "overwrite it, or another --out")
        return cfg
    if not (out / STATE).is_file() or not (out / checkpoint.CONFIG).is_file():
        raise OutputError(f"{out}: holds no run to resume (no {STATE}); drop --resume to start a new run there")
    meta = checkpoint.read_meta(out)
    if not isinstance(meta.get("config"), dict):
        raise OutputError(f"{out}: its config.json holds no training config to resume; drop --resume to start anew")
    if args.model not in ("auto", meta["model"]):
        raise OutputError(f"{out}: holds a {meta['model']} run, not {args.model}; drop --model to resume it")
    holdout = meta.get("holdout") or {"val_fraction": 0, "seed": meta["config"]["seed"]}  # the same train split
    args.val_fraction, args.seed = holdout["val_fraction"], holdout["seed"]
    return TrainConfig.from_dict(meta["config"])


def cmd_train(args: argparse.Namespace) -> None:
    """Train a model on a source's train split, select on val, save a checkpoint directory."""
    from fernb.data import check_holdout, load, read_pool
    from fernb.evaluate import RUNS_DEFAULT
    from fernb.train import fit
    out = check_output(args.out or RUNS_DEFAULT, folder=True)
    cfg = train_config(args, out)
    if args.val_fraction:  # 0: all of train
        check_holdout(args.val_fraction, args.seed)
    pool = read_pool(args.data)
    train = load(split="train", pool=pool, val_fraction=args.val_fraction, seed=args.seed)
    val = load(split="val", pool=pool, val_fraction=args.val_fraction, seed=args.seed) if args.val_fraction else None
    summary = fit(train, val, cfg, out=out, resume=args.resume, progress=not args.json)
    summary.pop("network")
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        best = summary["best_val_acc"]
        kept = f"best val acc {best:.4f}" if best is not None else "all of train, no val hold-out: last epoch kept"
        print(f"trained {summary['epochs_run']} epochs in {summary['seconds'] / 60:.1f} min; {kept}; checkpoint: {out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    """Accuracy, macro-F1, per-class scores and confusion matrix of a checkpoint on one split."""
    from fernb.evaluate import load_model, load_split, metrics, predict
    model, meta = load_model(args.checkpoint)
    data = load_split(meta, args.data, args.split)
    m = metrics(predict(model, data, tta=args.tta))
    m.update(split=args.split, tta=args.tta, model=meta["model"], source=data.source)
    if args.json:
        print(json.dumps(m, indent=1))
        return
    print(f"{meta['model']} on {data.source} [{args.split}{f', {args.tta} TTA' if args.tta else ''}]: "
          f"accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, n={m['n']}")
    print("class".ljust(10) + "precision".rjust(10) + "recall".rjust(8) + "f1".rjust(8) + "n".rjust(6))
    for c, r in m["per_class"].items():
        print(c.ljust(10) + f"{r['precision']:10.3f}{r['recall']:8.3f}{r['f1']:8.3f}{r['support']:6d}")
    print("confusion (rows = true, columns = predicted, in the order above):")
    for c, row in zip(m["classes"], m["confusion"]):
        print(c[:8].ljust(10) + "".join(str(v).rjust(6) for v in row))


def cmd_predict(args: argparse.Namespace) -> int:
    """Faces in photos and videos: boxes and class probabilities; the batch goes on past bad files (exit 2 after)."""
    from fernb.evaluate import load_model
    from fernb.video import check_options, is_video
    check_options(args.every, args.fps, args.smooth)
    videos = [p for p in args.images if is_video(p)]
    for out, folder in ((args.annotate, True), (args.csv, len(videos) > 1)):
        if out:
            check_output(out, folder=folder)
    if args.annotate:
        Path(args.annotate).mkdir(parents=True, exist_ok=True)
    model, meta = load_model(args.checkpoint)
    results, failed = [], 0
    for path in args.images:
        try:
            results.append(predict_video(args, model, meta, path, len(videos)) if is_video(path)
                           else predict_photo(args, model, meta, path))
        except FernbError as e:
            print(f"fernb: error: {e}", file=sys.stderr)
            results.append({"image": path, "error": str(e), "faces": []})
            failed += 1
    if args.json:
        print(json.dumps(results, indent=1))
    return 2 if failed else 0


def predict_photo(args: argparse.Namespace, model, meta: dict, path: str) -> dict:
    """One photo: every face's box and probabilities, printed (or returned for --json) and drawn with --annotate."""
    from fernb.faces import annotate, predict_faces, read_photo
    photo = read_photo(path)
    faces = predict_faces(model, photo, meta["classes"])
    if not faces:
        print(f"fernb: {path}: no face found; try a larger, frontal, well-lit face", file=sys.stderr)
    if args.annotate:
        annotate(photo, faces).save(Path(args.annotate) / f"{Path(path).stem}_annotated.jpg", quality=92)
    for i, f in enumerate([] if args.json else faces):
        top = sorted(f["probs"].items(), key=lambda kv: -kv[1])[:3]
        print(f"{path} face {i} at {f['box']}: " + ", ".join(f"{c} {p:.0%}" for c, p in top))
    return {"image": path, "size": [photo.shape[1], photo.shape[0]], "faces": faces}


def predict_video(args: argparse.Namespace, model, meta: dict, path: str, n_videos: int) -> dict:
    """One video: a row per face per analysed frame, into --csv (a folder of <video>.csv for several videos)."""
    from fernb.video import analyse, write_csv
    name = Path(path).stem
    annotated = Path(args.annotate) / f"{name}_annotated.mp4" if args.annotate else None
    rows = analyse(model, path, meta["classes"], args.every, args.fps, args.smooth, annotated)
    csv_path = (Path(args.csv) / f"{name}.csv" if n_videos > 1 else Path(args.csv)) if args.csv else None
    if csv_path:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(rows, csv_path, meta["classes"])
    ids = sorted({r["face_id"] for r in rows})
    if not rows:
        print(f"fernb: {path}: no face found in any analysed frame" + (f"; wrote an empty {csv_path}" if csv_path
                                                                           else ""), file=sys.stderr)
    elif not args.json:
        print(f"{path}: {len(rows)} face rows, {len(ids)} face id(s)" + (f"; wrote {csv_path}" if csv_path else ""))
    return {"video": path, "csv": str(csv_path) if csv_path else None, "faces": len(ids), "rows": rows}


def cmd_export(args: argparse.Namespace) -> None:
    """Export a checkpoint to ONNX and check that onnxruntime agrees with torch."""
    import torch

    from fernb.evaluate import load_model
    from fernb.export import export_onnx, onnx_parity
    check_output(args.out, folder=False)
    model, meta = load_model(args.checkpoint)
    out = export_onnx(model, args.out)
    faces = torch.randint(0, 256, (16, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    diff = onnx_parity(model, out, faces)
    print(f"wrote {out} ({meta['model']}); input 'pixels' [B,1,{IMAGE_SIZE},{IMAGE_SIZE}] 0..255, output 'probs' [B,{len(meta['classes'])}]"
          f" in class order {','.join(meta['classes'])}; max |onnxruntime - torch| = {diff:.2e}")


def cmd_demo(args: argparse.Namespace) -> None:
    """Serve the live demo in the browser until Ctrl-C."""
    from fernb.demo import launch
    if not 0 < args.port < 65536:
        raise ConfigError(f"port={args.port}: must be between 1 and 65535")
    print(f"fernb demo on http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True)
    launch(args.checkpoint, host=args.host, port=args.port)


def add_data_arg(s: argparse.ArgumentParser) -> None:
    """The --data option every subcommand shares."""
    s.add_argument("--data", help="FER-2013 folder, fer2013.csv or 'synthetic' (default: $FERNB_DATA, ./data/fer2013)")


def add_checkpoint_arg(s: argparse.ArgumentParser) -> None:
    """The --checkpoint option of the commands that use a trained model."""
    s.add_argument("--checkpoint", help="checkpoint directory (default: $FERNB_CHECKPOINT, the packaged model, "
                   "else runs/latest)")


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line like every other fernb error (no usage block before it)."""

    def error(self, message: str):
        self.exit(2, f"fernb: error: {self.prog}: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    from fernb import __version__
    p = Parser(prog="fernb", description="Facial expression recognition on FER-2013.")
    p.add_argument("--version", action="version", version=f"fernb {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    add_data_commands(sub)
    add_train_command(sub)
    add_model_commands(sub)
    return p


def add_data_commands(sub) -> None:
    """fernb info and fernb download."""
    from fernb.download import REPO_URL
    s = sub.add_parser("info", help="show what a data source holds")
    add_data_arg(s)
    s.add_argument("--val-fraction", type=float, default=0.1, help="hold-out carved from train (default 0.1)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("download", help="fetch FER-2013 in the public folder layout")
    s.add_argument("dest", help="folder to create, e.g. data/fer2013")
    s.add_argument("--url", default=REPO_URL, help="git repository holding train/ and test/")
    s.set_defaults(func=cmd_download)


def add_train_command(sub) -> None:
    """fernb train: its defaults come from TrainConfig, which also checks every value."""
    from fernb.train import PRECISIONS, TrainConfig
    s = sub.add_parser("train", help="train a model; the kept epoch is chosen on val")
    add_data_arg(s)
    s.add_argument("--model", default=TrainConfig.model, help="fernet_s, fernet_m, fernet, fernet_l or any timm name "
                   "(default auto: fernet_l, the default recipe; with a --minutes budget on a CPU, the widest "
                   "FERNet measured to get ~40 epochs in it)")
    budget = s.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=TrainConfig.epochs,
                        help=f"number of epochs (default {TrainConfig.epochs})")
    budget.add_argument("--minutes", type=float, help="a time budget instead of epochs; the schedule spans it, and "
                        "the recipe is the short-run one (TrainConfig.short: weight decay 0.01, no dropout, no erasing)")
    s.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    s.add_argument("--lr", type=float, default=TrainConfig.lr, help="peak learning rate of the one-cycle schedule")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--val-fraction", type=float, default=0.1,
                   help="hold-out carved from train for selection (default 0.1); 0: all of train, last epoch kept")
    s.add_argument("--class-weights", action="store_true", help="weight the loss by inverse class frequency")
    s.add_argument("--device", default="auto", help="auto (cuda, mps, cpu), cpu, cuda, ...")
    s.add_argument("--precision", default="auto", choices=PRECISIONS)
    s.add_argument("--out", help="checkpoint directory (default runs/latest)")
    s.add_argument("--resume", action="store_true", help="continue the run saved in --out, with its own options")
    s.add_argument("--force", action="store_true", help="overwrite the checkpoint of another run in --out")
    s.add_argument("--json", action="store_true", help="print the run summary as JSON (no progress bars)")
    s.set_defaults(func=cmd_train)


def add_model_commands(sub) -> None:
    """fernb evaluate, predict and export: the commands that use a trained model."""
    s = sub.add_parser("evaluate", help="score a checkpoint on one split")
    add_data_arg(s)
    s.add_argument("--split", default="test", help="train, val, test, publictest or privatetest (default test)")
    add_checkpoint_arg(s)
    s.add_argument("--tta", action="store_const", const="flip", help="average each face with its mirror image")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("predict", help="detect faces in photos and videos and classify their expressions")
    s.add_argument("images", nargs="+", help="photo files (JPEG, PNG, ...) and video files (MP4, AVI, ...)")
    add_checkpoint_arg(s)
    s.add_argument("--annotate", metavar="OUT_DIR", help="write each photo or video with boxes and labels into OUT_DIR")
    s.add_argument("--json", action="store_true", help="print JSON: per file, every face's box and probabilities")
    s.add_argument("--csv", help="video: one row per face per analysed frame (time_s, frame, face_id, x, y, w, h, the "
                   "seven probabilities) into this file; a folder for several videos")
    sampling = s.add_mutually_exclusive_group()
    sampling.add_argument("--every", type=int, default=1, help="video: analyse every N-th frame (default 1)")
    sampling.add_argument("--fps", type=float, help="video: analyse about this many frames per second")
    s.add_argument("--smooth", type=float, default=0.0, help="video: blend each face's probabilities with its "
                   "previous ones, 0 (off, default) to 0.99")
    s.set_defaults(func=cmd_predict)

    s = sub.add_parser("demo", help="a live demo in the browser: webcam and photos (needs the demo extra)")
    add_checkpoint_arg(s)
    s.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this computer only)")
    s.add_argument("--port", type=int, default=7860, help="port to serve on (default 7860)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("export", help="export a checkpoint to ONNX")
    add_checkpoint_arg(s)
    s.add_argument("--out", required=True, help="the .onnx file to write")
    s.set_defaults(func=cmd_export)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `fernb` console script."""
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
