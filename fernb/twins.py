"""Near-duplicate faces ("twins"): the same picture copied, re-encoded, re-cropped, shifted or re-lit.

Two faces are twins when their blurred 16x16 thumbnails correlate at THRESHOLD or above after the best alignment of
one onto the other (zoom 0.8-1.25x, shifts up to 8 pixels); a shift-proof signature (Fourier magnitudes plus a
coarse thumbnail) first picks 16 candidates per face, and only those are aligned (a twin ranked lower, which is
rare, is missed). It misses copies that were mirrored, rotated, cropped by more than about a fifth or heavily
retouched, and it can call two different pictures twins when they share their whole layout and differ only in thin
strokes (fernb's synthetic cartoon faces do; FER-2013's photos rarely, see THRESHOLD). Near-blank images (pixel std
below 3) are never anyone's twin: a dozen blank frames are alike without being the same picture.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

Images = np.ndarray | torch.Tensor  # uint8 [N, 48, 48], grey

SIZE = 48  # FER-2013's faces are 48x48
BLANK_STD = 3.0  # the std below which fernb.explore calls an image blank
GRID, BOX = 16, 40.0  # the compared thumbnail: 16x16 points over the central 40 px (borders change most on a re-crop)
FREQS = 8  # the signature keeps Fourier frequencies 0..8 each way: the face's coarse shape, not its noise
CANDIDATES = 16  # candidates per query by signature: among 1,000 test faces' 306 twins, 8 candidates lost 2
ZOOMS = (0.93, 1.07)  # queries are searched at two zooms (one lost 9 of 306): Fourier magnitudes ignore shifts only
SCALES = tuple(math.exp(t) for t in np.linspace(math.log(0.85), -math.log(0.85), 5))  # the alignment lattice...
SHIFTS = (-6.0, -3.0, 0.0, 3.0, 6.0)  # ... 5 zooms x 5 x 5 shifts, then refined locally around the best
LATTICE_BLUR = 2.0  # the lattice compares blurrier thumbnails, which tolerate its 3 px and 8% steps
REFINE_TOP = 3  # only each query's best three are refined, and only...
REFINE_FROM = 0.85  # ... from this blurred-lattice correlation up (FER-2013's twins: 0.90 or more)

# Calibrated by eye on FER-2013 (montages of pairs; PublicTest against Training, and Training against itself).
# PublicTest's best match in Training: all 31 pairs in [0.97, 0.98) and 66 random pairs above 0.97 were the same
# picture; in [0.96, 0.97) 15 of 17, in [0.95, 0.96) about 8 of 21 (the others: other people in the same pose and
# light, up to 0.966). Within Training, 2 of 42 random pairs in [0.970, 0.975) were different people, 0 of 42 in
# [0.975, 0.98): hence 0.975. Copies made of 300 Training faces (JPEG q40, a 3+3 px shift, off-centre re-crops of
# 0.86x and 1.15x, new contrast) scored 0.975 or more for 99-100% of each kind; 1.7% fell below where a re-crop,
# JPEG q60 and new brightness were combined.
THRESHOLD = 0.975


def _as_float(images: Images) -> torch.Tensor:
    """Images [N, 48, 48] (uint8 numpy or torch) as a float32 tensor of grey levels (a copy)."""
    return torch.tensor(np.asarray(images), dtype=torch.float32).reshape(-1, SIZE, SIZE)


def _usable(x: torch.Tensor) -> torch.Tensor:
    """True for images with real content: blank frames are alike without being the same picture."""
    return x.flatten(1).std(1) >= BLANK_STD


def _blur_matrix(sigma: float) -> torch.Tensor:
    """[SIZE, SIZE] Gaussian blur along one axis, edge pixels repeated, as a matrix (far faster than conv2d here)."""
    pos = torch.arange(SIZE, dtype=torch.float32)
    taps = torch.arange(-3 * math.ceil(sigma), 3 * math.ceil(sigma) + 1, dtype=torch.float32)
    g = torch.exp(-taps ** 2 / (2 * sigma ** 2))
    m = torch.zeros(SIZE, SIZE)
    m.index_put_((pos[:, None].long().expand(-1, len(taps)), (pos[:, None] + taps).clamp(0, SIZE - 1).long()),
                 (g / g.sum()).expand(SIZE, -1), accumulate=True)
    return m


_BLUR = {s: _blur_matrix(s) for s in (1.0, 2.0, 3.0)}


def _sampler(scale: torch.Tensor, shift: torch.Tensor, grid: int = GRID, box: float = BOX,
             sigma: float = 1.0) -> torch.Tensor:
    """Matrices [..., grid, SIZE] that blur one axis and sample `grid` points across a box of box*scale pixels
    centred `shift` pixels off the image centre (linear interpolation, edges repeated); rows and columns alike."""
    offsets = (torch.arange(grid, dtype=torch.float32) - (grid - 1) / 2) * box / grid
    pos = ((SIZE - 1) / 2 + shift[..., None] + scale[..., None] * offsets).clamp(0, SIZE - 1)
    below = pos.floor().long().clamp(max=SIZE - 2)
    frac = (pos - below)[..., None]
    blur = _BLUR[sigma] if sigma else torch.eye(SIZE)
    return blur[below] * (1 - frac) + blur[below + 1] * frac  # interpolating rows of the blur: no dense weights


def _unit(v: torch.Tensor) -> torch.Tensor:
    """Each row minus its mean, divided by its norm: cosines of such rows are correlations (brightness-proof)."""
    v = v.flatten(1)
    v = v - v.mean(1, keepdim=True)
    return v / v.norm(dim=1, keepdim=True).clamp(min=1e-6)


def _zoom(x: torch.Tensor, s: float) -> torch.Tensor:
    """Images [N, 48, 48] zoomed by s about their centre (s < 1 shows less of the picture), edges repeated."""
    m = _sampler(torch.tensor(1 / s), torch.tensor(0.0), grid=SIZE, box=SIZE, sigma=0)
    return m @ x @ m.T


def _signature(x: torch.Tensor) -> torch.Tensor:
    """signature() of float images: it is called on zoomed queries too."""
    b = x - x.mean((1, 2), keepdim=True)
    w = torch.hann_window(SIZE, periodic=False)
    f = torch.fft.rfft2(b * (w[:, None] * w[None, :])).abs()  # magnitudes: the same wherever the face sits
    f = torch.cat([f[:, :FREQS + 1, :FREQS + 1], f[:, -FREQS:, :FREQS + 1]], 1).sqrt()  # sqrt: fewer dominant lows
    m = _sampler(torch.tensor(1.0), torch.tensor(0.0), grid=8, sigma=3.0)
    thumb = m @ x @ m.T  # where things are, coarsely: magnitudes alone confuse faces of the same pose
    return torch.cat([_unit(f) * 0.8 ** 0.5, _unit(thumb) * 0.2 ** 0.5], 1)  # cosine = 0.8 spectra + 0.2 thumbnail


def signature(images: Images) -> np.ndarray:
    """A normalised descriptor float32 [N, 217] per face; cosines of signatures rank candidate twins."""
    return _signature(_as_float(images)).numpy()


def _centred(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """The compared thumbnail of each face as it is: unit rows [N, GRID*GRID]."""
    m = _sampler(torch.tensor(1.0), torch.tensor(0.0), sigma=sigma)
    return _describe(m @ x @ m.T)


def _describe(thumbs: torch.Tensor) -> torch.Tensor:
    """Thumbnails [N, GRID, GRID] as the unit rows whose cosines are compared."""
    return _unit(thumbs)


def _lattice_scores(q: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For queries [B, 48, 48] and their candidates' thumbnails [B, K, D]: the best correlation over the
    alignment lattice [B, K] and the (scale, dy, dx) that gave it [B, K, 3]."""
    best = torch.full(ref.shape[:2], -2.0)
    where = torch.zeros(*ref.shape[:2], 3)
    shifts = torch.tensor(SHIFTS)
    for s in SCALES:
        m = _sampler(torch.full((len(SHIFTS),), s), shifts, sigma=LATTICE_BLUR)  # [5, GRID, SIZE], one per shift
        rows = torch.einsum("agh,bhw->bagw", m, q)  # separable: rows once per dy, then columns once per dx
        thumbs = torch.einsum("bagw,ckw->bacgk", rows, m)  # [B, dy, dx, GRID, GRID]
        sims = torch.einsum("bad,bkd->bak", _describe(thumbs.flatten(0, 2)).view(len(q), len(SHIFTS) ** 2, -1), ref)
        val, arg = sims.max(1)
        better = val > best
        best = torch.where(better, val, best)
        found = torch.stack([torch.full_like(val, s), shifts[arg // len(SHIFTS)], shifts[arg % len(SHIFTS)]], -1)
        where = torch.where(better[..., None], found, where)
    return best, where


def _at(q: torch.Tensor, ref: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Pairs (query image [P, 48, 48], reference thumbnail [P, D]): the correlation at alignments [P, 3]."""
    rows, cols = _sampler(where[:, 0], where[:, 1]), _sampler(where[:, 0], where[:, 2])
    return (_describe(rows @ q @ cols.transpose(-1, -2)) * ref).sum(-1)


def _refine(q: torch.Tensor, ref: torch.Tensor, where: torch.Tensor, best: torch.Tensor, rounds: int = 2,
            chunk: int = 1024) -> torch.Tensor:
    """Pairs (query image [P, 48, 48], reference thumbnail [P, D]): the correlation after a local search of
    3 zooms x 3 x 3 shifts around the lattice's alignment `where` [P, 3] (zoom, dy, dx), halving the steps."""
    if len(q) > chunk:  # bounded memory
        return torch.cat([_refine(q[i:i + chunk], ref[i:i + chunk], where[i:i + chunk], best[i:i + chunk], rounds)
                          for i in range(0, len(q), chunk)])
    step = torch.tensor([-1.0, 0.0, 1.0])
    zoom_step, shift_step = 0.04, 1.5
    for _ in range(rounds):
        zoom = (where[:, :1] * (1 + zoom_step * step))[:, :, None].expand(-1, 3, 3)  # [P, zoom, shift]
        dy = (where[:, 1:2] + shift_step * step)[:, None].expand(-1, 3, 3)
        dx = (where[:, 2:3] + shift_step * step)[:, None].expand(-1, 3, 3)
        rows = _sampler(zoom, dy).flatten(2, 3) @ q[:, None]  # [P, zoom, dy and grid, SIZE]: separable again
        thumbs = rows @ _sampler(zoom, dx).flatten(2, 3).transpose(-1, -2)  # [P, zoom, dy and grid, dx and grid]
        thumbs = thumbs.view(len(q), 3, 3, GRID, 3, GRID).transpose(3, 4)  # [P, zoom, dy, dx, GRID, GRID]
        sims = (_describe(thumbs.flatten(0, 3)).view(len(q), 27, -1) * ref[:, None]).sum(-1)
        val, arg = sims.max(1)
        better = val > best
        best = torch.where(better, val, best)
        found = torch.stack([zoom[:, :, 0], dy[:, 0], dx[:, 0]], -1)  # [P, 3 values, (zoom, dy, dx)]
        pick = torch.stack([arg // 9, arg // 3 % 3, arg % 3], -1)  # which of the 3 zooms, dys, dxs
        chosen = torch.gather(found, 1, pick[:, None]).squeeze(1)  # [P, 3]
        where = torch.where(better[:, None], chosen, where)
        zoom_step, shift_step = zoom_step / 2, shift_step / 2
    return best


def _scored_pairs(query: Images, reference: Images, exclude_self: bool,
                  batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query its REFINE_TOP best candidates [Q, T] (-1 for none) and their aligned correlations (-1 where
    either face is blank)."""
    q, r = _as_float(query), _as_float(reference)
    ref_sig, ref_thumb, ref_coarse = _signature(r), _centred(r), _centred(r, LATTICE_BLUR)
    ref_ok, q_ok = _usable(r), _usable(q)
    k = min(CANDIDATES, len(r) - exclude_self)
    top = min(REFINE_TOP, k)
    index = torch.full((len(q), max(top, 0)), -1, dtype=torch.long)
    score = torch.full((len(q), max(top, 0)), -1.0)
    for start in range(0, len(q) if k > 0 else 0, batch):
        qb = q[start:start + batch]
        sims = _signature(_zoom(qb, ZOOMS[0])) @ ref_sig.T  # [B, R]
        for z in ZOOMS[1:]:
            torch.maximum(sims, _signature(_zoom(qb, z)) @ ref_sig.T, out=sims)  # in place: [B, R] is large
        sims[:, ~ref_ok] = -math.inf  # a blank frame is nobody's twin
        if exclude_self:
            rows = torch.arange(len(qb))
            sims[rows, start + rows] = -math.inf  # a face is not its own twin
        found, cand = sims.topk(k, dim=1)
        coarse, where = _lattice_scores(qb, ref_coarse[cand])  # blurred thumbnails: tolerant of a coarse lattice
        order = coarse.index_fill(1, torch.tensor([0]), math.inf).topk(top, dim=1).indices  # the signature's own
        coarse = coarse.gather(1, order)  # favourite is always aligned, then the lattice's: either alone can err
        cand, where = cand.gather(1, order), where.gather(1, order[..., None].expand(-1, -1, 3))
        allowed = found.gather(1, order) > -math.inf  # topk falls back on excluded faces when too few are left
        owner = torch.arange(len(qb))[:, None].expand_as(cand)
        best = _at(qb[owner.flatten()], ref_thumb[cand.flatten()], where.flatten(0, 1)).view_as(coarse)
        i, j = torch.nonzero(coarse >= REFINE_FROM, as_tuple=True)  # the others are far from any twin
        if len(i):
            best[i, j] = _refine(qb[i], ref_thumb[cand[i, j]], where[i, j], best[i, j])
        best = torch.where(q_ok[start:start + batch, None] & allowed, best.clamp(-1, 1), -1.0)
        index[start:start + batch], score[start:start + batch] = cand, best
    return index, score


def nearest(query: Images, reference: Images, exclude_self: bool = False,
            batch: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """For each query face the index of its most similar reference face and that aligned correlation in [-1, 1];
    -1 and -1.0 where the query is blank or no reference is usable. exclude_self: query is reference, and a face
    is not its own twin."""
    index, score = _scored_pairs(query, reference, exclude_self, batch)
    if index.shape[1] == 0:
        return np.full(len(index), -1), np.full(len(index), -1.0, np.float32)
    best, arg = score.max(1)
    found = index[torch.arange(len(index)), arg]
    return torch.where(best > -1, found, -1).numpy(), best.numpy()


def has_twin(query: Images, reference: Images, threshold: float = THRESHOLD,
             exclude_self: bool = False) -> np.ndarray:
    """True [N] for each query face with a near-duplicate among the reference faces."""
    return nearest(query, reference, exclude_self)[1] >= threshold


def _aligned(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The correlation of each face of a [P, 48, 48] aligned onto its partner in b [P, 48, 48]."""
    _, where = _lattice_scores(a, _centred(b, LATTICE_BLUR)[:, None])
    return _refine(a, _centred(b), where[:, 0], torch.full((len(a),), -1.0))


def _pair_similarity(face: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """The aligned correlation of one float face [48, 48] with each of others [M, 48, 48], the better of both
    directions (an alignment is not quite symmetric): so groups() never links two faces distinct() kept."""
    if not _usable(face[None])[0]:
        return torch.full((len(others),), -1.0)
    same = face[None].expand(len(others), -1, -1)
    best = torch.maximum(_aligned(same, others), _aligned(others, same))
    return torch.where(_usable(others), best, -1.0)


def distinct(images: Images, indices: Iterable[int], n: int, threshold: float = THRESHOLD) -> list[int]:
    """The first n of indices (in order) such that no two kept faces are twins."""
    x = _as_float(images)
    kept: list[int] = []
    for i in indices:
        if len(kept) == n:
            break
        i = int(i)  # numpy and torch integers alike
        if not kept or bool((_pair_similarity(x[i], x[kept]) < threshold).all()):
            kept.append(i)
    return kept


def groups(images: Images, threshold: float = THRESHOLD) -> list[np.ndarray]:
    """Groups (connected components) of faces linked by twin pairs, each of at least two indices, largest first."""
    index, score = _scored_pairs(images, images, exclude_self=True, batch=2048)
    i, j = torch.nonzero(score >= threshold, as_tuple=True)
    n = len(index)
    graph = coo_matrix((np.ones(len(i)), (i.numpy(), index[i, j].numpy())), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    members = [np.flatnonzero(label == g) for g in np.flatnonzero(np.bincount(label) >= 2)]
    return sorted(members, key=len, reverse=True)
