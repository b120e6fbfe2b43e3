"""`fernb` on the command line: thin argparse over the package; errors print one line and exit with status 2."""
from __future__ import annotations

import argparse
import json
import sys

from fernb.data import FernbError


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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    from fernb import __version__
    from fernb.download import REPO_URL
    p = argparse.ArgumentParser(prog="fernb", description="Facial expression recognition on FER-2013.")
    p.add_argument("--version", action="version", version=f"fernb {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("info", help="show what a data source holds")
    s.add_argument("--data", help="FER-2013 folder, fer2013.csv or 'synthetic' (default: $FERNB_DATA, ./data/fer2013)")
    s.add_argument("--val-fraction", type=float, default=0.1, help="hold-out carved from train (default 0.1)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("download", help="fetch FER-2013 in the public folder layout")
    s.add_argument("dest", help="folder to create, e.g. data/fer2013")
    s.add_argument("--url", default=REPO_URL, help="git repository holding train/ and test/")
    s.set_defaults(func=cmd_download)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `fernb` console script."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except FernbError as e:
        print(f"fernb: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fernb: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
