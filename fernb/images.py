"""Opening image files: one decoder for training faces and photos, so both see the same upright, 8-bit pixels,
and every way a file can fail is one line naming it."""
from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fernb.errors import FernbError


def open_image(path: str | Path, error: type[FernbError]) -> Image.Image:
    """The image in path, upright (EXIF orientation honoured) and in an 8-bit mode (16-bit and float scaled);
    a file that cannot be read raises error with one line: missing, unreadable for you, too large, or corrupt."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)  # a phone's portrait photo is stored sideways, with a tag to turn it
            return to_8bit(im) if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F") else im.copy()
    except Image.DecompressionBombError as e:  # not an OSError: Pillow's guard against a tiny file of huge size
        raise error(f"{path}: too many pixels to decode safely ({e}); shrink the image first") from None
    except (UnidentifiedImageError, SyntaxError, ValueError) as e:  # before OSError, which the first of these is
        raise error(f"{path}: not a readable image ({e.__class__.__name__}); pass a JPEG or PNG") from None
    except PermissionError:
        raise error(f"{path}: not readable for you (permission denied); make it readable, e.g. chmod a+r") from None
    except OSError as e:
        if e.errno is not None:  # the file system's word (a broken link, a loop of links, a name too long), not PIL's
            why = "a link in a loop, to itself" if e.errno == errno.ELOOP else e.strerror
            raise error(f"{path}: cannot be opened ({why}); fix or remove it") from None
        raise error(f"{path}: corrupt or truncated image ({str(e)[:60]}); delete or replace it") from None


def why_missing(path: Path) -> str:
    """Why a path names no file: a loop of links, a link to nothing, or nothing at all."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a link in a loop, to itself; fix or remove it"
    return "a link to a file that is not there; fix or remove it" if path.is_symlink() else "no such file; check the path"


def to_8bit(im: Image.Image) -> Image.Image:
    """A 16-bit or 32-bit integer image, or a float one, as 8-bit grey: scaled, not clipped (Pillow's convert
    clips, so a 16-bit face decodes almost white and a float one in 0..1 black)."""
    a = np.asarray(im).astype(np.float64)
    if im.mode == "F":
        a = a * 255 if np.nanmax(a, initial=0) <= 1 else a  # floats in 0..1, else already on the 8-bit scale
    elif np.nanmax(a, initial=0) > 255:
        a = a / 257  # 65535 -> 255: a 16-bit range
    return Image.fromarray(np.nan_to_num(a).clip(0, 255).round().astype(np.uint8), mode="L")
