"""GFMM-blocks: the computational graph of a fast-multipole matvec as a trainable operator.

A GFMM-block acts on ``x`` of length ``n = N * P`` split into ``N`` leaf blocks of size ``P``.
The graph has

* a **near field** ("leaf bridge"): P x P maps between neighbouring leaves;
* an **encoder** (up-sweep): every node at level ``l`` maps its P-vector to its parent with a
  P x P map, the parent summing its children (binary tree in 1-D, quad-tree in 2-D);
* **bridges**: at every interior level, P x P maps between nearby nodes (block-banded);
* a **decoder** (down-sweep): every node adds ``D (parent's value)`` to its bridge output,
  down to the leaves.

So ``y = Near x + sum_l Dec_l Bridge_l Enc_l x``. With ``triangle='lower'`` every map goes from
a node to a node that is not before it (near field block lower-*bi*diagonal in 1-D; interior
bridges *strictly* block-lower; no root bridge), which makes the operator exactly block-lower
triangular: a signal entering leaf ``j`` can only reach leaves ``i >= j`` (``i > j`` through the
far field). ``'upper'`` is the mirror image; ``'none'`` is the unconstrained GFMM with a root
bridge. With ``diag='triangular'`` the diagonal near blocks are masked to be triangular, so the
dense extraction is triangular entry-wise (a true LU); ``'full'`` keeps full P x P diagonal
blocks (a block LU); ``'unit'`` is triangular with the diagonal fixed to 1 (not trained), the
Doolittle normalization of ``L`` that removes the diagonal scaling ``L D, D^{-1} U`` the product
cannot see.

2-D ("tensor-product") variant: an ``s x s`` grid is cut into ``p x p`` patches (``P = p^2``),
patches and tree nodes are ordered in Morton (Z) order, which is hierarchical, so "node before
node" at any level means "all its leaves come first". Interactions are geometric: Chebyshev
distance <= 1 for the near field, ``1..band`` for bridges. The block acts on vectors in
*patch-Morton order*; :attr:`GFMMStructure.perm` maps that order to the grid's lexicographic
order (``x_patch = x_grid[perm]``).

Cost of one matvec: ``O(P^2 * (#near + #bridge + 2 #nodes))`` = ``O(n P (3 + band) )`` in 1-D,
i.e. linear in ``n``; parameters ``~ (#maps) P^2`` which is below ``n^2`` only once
``N = n / P`` is large enough (see :meth:`GFMMBlock.num_parameters`).

References
----------
L. Greengard & V. Rokhlin, "A fast algorithm for particle simulations", J. Comput. Phys. 73
(1987); the learned-FMM-graph idea (GFMM block: a graph of near-field blocks,
encoder/decoder maps and bridges between tree nodes, each a learned dense P x P map) follows
that hierarchy with every translation operator learned instead of derived from a kernel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["DiagMode", "GFMMBlock", "GFMMStructure", "Triangle", "check_leaf_layout"]

Triangle = Literal["lower", "upper", "none"]
DiagMode = Literal["full", "triangular", "unit"]


def check_leaf_layout(n: int, leaf: int, dim: int = 1, *, caller: str = "GFMMStructure") -> int:
    """Check that ``n`` splits into a power-of-two (1-D) / power-of-four (2-D) number of leaves.

    Returns the number of tree levels below the root. Raises ``ValueError`` saying what would
    work.
    """
    for name, v in (("n", n), ("leaf", leaf)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"The '{name}' parameter of {caller} must be an int >= 1. Got {v!r}.")
    if dim not in (1, 2):
        raise ValueError(f"The 'dim' parameter of {caller} must be 1 or 2. Got {dim!r}.")
    if dim == 1:
        if n % leaf:
            lo = max(leaf, (n // leaf) * leaf)
            raise ValueError(
                f"The 'n' parameter of {caller} must be a multiple of the leaf size {leaf}. "
                f"Got n={n}; try n={lo} or n={lo + leaf}, or a leaf size dividing {n}."
            )
        N = n // leaf
        if N & (N - 1):
            p2 = 1 << (N.bit_length() - 1)
            raise ValueError(
                f"The number of leaves n/leaf = {n}/{leaf} = {N} of {caller} must be a power of "
                f"two. Try n={p2 * leaf} or n={2 * p2 * leaf} with leaf={leaf}."
            )
        return N.bit_length() - 1
    s, p = math.isqrt(n), math.isqrt(leaf)
    if s * s != n or p * p != leaf:
        raise ValueError(
            f"The 2-D variant of {caller} needs n = s^2 grid points and leaf = p^2 patch points. "
            f"Got n={n}, leaf={leaf}; e.g. n=256 (16x16) with leaf=16 (4x4 patches)."
        )
    if s % p or ((s // p) & (s // p - 1)):
        raise ValueError(
            f"The 2-D variant of {caller} needs the grid side s={s} to be a power-of-two multiple "
            f"of the patch side p={p}. Got s/p={s / p:g}; try p in "
            f"{[q for q in range(1, s + 1) if s % q == 0 and ((s // q) & (s // q - 1)) == 0]}."
        )
    return (s // p).bit_length() - 1


def _morton(i: np.ndarray, j: np.ndarray, bits: int) -> np.ndarray:
    out = np.zeros_like(i)
    for b in range(bits):
        out |= ((i >> b) & 1) << (2 * b + 1)
        out |= ((j >> b) & 1) << (2 * b)
    return out


def _keep(t: np.ndarray, s: np.ndarray, triangle: str, strict: bool) -> np.ndarray:
    if triangle == "lower":
        return s < t if strict else s <= t
    if triangle == "upper":
        return s > t if strict else s >= t
    return np.ones_like(t, dtype=bool)


@dataclass(frozen=True)
class GFMMStructure:
    """The graph of a GFMM-block: tree, near-field pairs and bridge pairs per level.

    Parameters
    ----------
    n : operator size.
    leaf : leaf block size ``P`` (1-D) or patch size ``p^2`` (2-D).
    dim : 1 (binary tree over contiguous blocks) or 2 (quad-tree over Morton-ordered patches).
    triangle : ``'lower'``, ``'upper'`` or ``'none'``.
    band : bridge reach at interior levels (node distance ``1..band``).
    """

    n: int
    leaf: int
    dim: int = 1
    triangle: Triangle = "lower"
    band: int = 2
    levels: int = field(init=False)
    arity: int = field(init=False)
    near: tuple[np.ndarray, np.ndarray] = field(init=False, repr=False)
    bridges: dict[int, tuple[np.ndarray, np.ndarray]] = field(init=False, repr=False)
    perm: np.ndarray | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        levels = check_leaf_layout(self.n, self.leaf, self.dim)
        if self.triangle not in ("lower", "upper", "none"):
            raise ValueError(
                "The 'triangle' parameter of GFMMStructure must be one of ['lower', 'upper', "
                f"'none']. Got {self.triangle!r}."
            )
        if isinstance(self.band, bool) or not isinstance(self.band, int) or self.band < 1:
            raise ValueError(
                f"The 'band' parameter of GFMMStructure must be an int >= 1. Got {self.band!r}."
            )
        arity = 2 if self.dim == 1 else 4
        set_ = object.__setattr__
        set_(self, "levels", levels)
        set_(self, "arity", arity)

        def pairs(level: int, lo: int, hi: int, strict: bool) -> tuple[np.ndarray, np.ndarray]:
            if self.dim == 1:
                m = 2**level
                t, s = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
                dist = np.abs(t - s)
            else:
                side = 2**level
                I, J = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
                code = _morton(I.ravel(), J.ravel(), level)
                coords = np.empty((side * side, 2), dtype=np.int64)
                coords[code, 0], coords[code, 1] = I.ravel(), J.ravel()
                t, s = np.meshgrid(np.arange(side * side), np.arange(side * side), indexing="ij")
                dist = np.abs(coords[t] - coords[s]).max(axis=-1)
            ok = (dist >= lo) & (dist <= hi) & _keep(t, s, self.triangle, strict)
            return t[ok].astype(np.int64), s[ok].astype(np.int64)

        set_(self, "near", pairs(levels, 0, 1, strict=False))
        bridges: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for level in range(1, levels):
            t, s = pairs(level, 1, self.band, strict=True)
            if t.size:
                bridges[level] = (t, s)
        if self.triangle == "none":
            bridges[0] = (np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64))
        set_(self, "bridges", bridges)
        if self.dim == 2:
            s, p = math.isqrt(self.n), math.isqrt(self.leaf)
            nb = s // p
            I, J = np.meshgrid(np.arange(nb), np.arange(nb), indexing="ij")
            code = _morton(I.ravel(), J.ravel(), levels)
            order = np.empty(nb * nb, dtype=np.int64)
            order[code] = np.arange(nb * nb)  # Morton position -> row-major patch index
            pi, pj = order // nb, order % nb
            a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
            rows = (pi[:, None] * p + a.ravel()[None, :]) * s + pj[:, None] * p + b.ravel()[None, :]
            set_(self, "perm", rows.ravel().astype(np.int64))
        else:
            set_(self, "perm", None)

    @property
    def num_leaves(self) -> int:
        return self.n // self.leaf

    @property
    def far_levels(self) -> list[int]:
        """Levels with bridges, coarse to fine (empty when the tree is too shallow)."""
        return sorted(self.bridges)

    @property
    def sweep_levels(self) -> list[int]:
        """Levels ``l`` whose nodes own an encoder map (to level l-1) and a decoder map."""
        if not self.bridges:
            return []
        return list(range(min(self.bridges) + 1, self.levels + 1))


class GFMMBlock(nn.Module):
    """A trainable GFMM-block (see the module docstring); acts on batches ``(*, n)``.

    Parameters
    ----------
    n, leaf, dim, triangle, band : see :class:`GFMMStructure`.
    diag : ``'full'`` (full diagonal blocks: block-triangular), ``'triangular'`` or ``'unit'``
        (triangular with a fixed unit diagonal).
    dtype : parameter dtype (float32 or float64).
    generator : explicit ``torch.Generator`` for the random initial encoder/decoder maps.

    Notes
    -----
    Initial state: near field zero, bridges zero, encoder/decoder maps random orthogonal divided
    by ``sqrt(arity)`` (so tree sums neither blow up nor vanish). Use :meth:`set_near_from` to
    start from blocks of a matrix (e.g. ``L = I``, ``U = block-upper(A)``).
    """

    def __init__(
        self,
        n: int,
        leaf: int,
        *,
        dim: int = 1,
        triangle: Triangle = "lower",
        band: int = 2,
        diag: DiagMode = "full",
        dtype: torch.dtype = torch.float64,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if diag not in get_args(DiagMode):
            raise ValueError(
                f"The 'diag' parameter of GFMMBlock must be one of {list(get_args(DiagMode))}. "
                f"Got {diag!r}."
            )
        if diag == "unit" and triangle == "none":
            raise ValueError(
                "GFMMBlock: diag='unit' needs triangle='lower' or 'upper' (a unit diagonal is a "
                "normalization of a triangular factor)."
            )
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(
                f"The 'dtype' parameter of GFMMBlock must be float32 or float64. Got {dtype}."
            )
        self.structure = st = GFMMStructure(n, leaf, dim, triangle, band)
        self.n, self.leaf, self.dim, self.triangle, self.band, self.diag = (
            n,
            leaf,
            dim,
            triangle,
            band,
            diag,
        )
        P = leaf
        t, s = st.near
        self.register_buffer("near_t", torch.as_tensor(t), persistent=False)
        self.register_buffer("near_s", torch.as_tensor(s), persistent=False)
        mask = torch.ones(len(t), P, P, dtype=dtype)
        eye = None  # the fixed unit diagonal added to the diagonal near blocks ('unit' only)
        if diag != "full" and triangle != "none":
            on_diag = torch.as_tensor(t == s)
            off = 0 if diag == "triangular" else (-1 if triangle == "lower" else 1)
            tri = torch.ones(P, P, dtype=dtype)
            tri = torch.tril(tri, off) if triangle == "lower" else torch.triu(tri, off)
            mask[on_diag] = tri
            if diag == "unit":
                eye = torch.zeros(len(t), P, P, dtype=dtype)
                eye[on_diag] = torch.eye(P, dtype=dtype)
        self.register_buffer("near_mask", mask, persistent=False)
        self.register_buffer("near_eye", eye, persistent=False)
        self.near = nn.Parameter(torch.zeros(len(t), P, P, dtype=dtype))
        self.bridge = nn.ParameterDict()
        for level, (bt, bs) in st.bridges.items():
            self.register_buffer(f"bt{level}", torch.as_tensor(bt), persistent=False)
            self.register_buffer(f"bs{level}", torch.as_tensor(bs), persistent=False)
            self.bridge[str(level)] = nn.Parameter(torch.zeros(len(bt), P, P, dtype=dtype))
        self.enc = nn.ParameterDict()
        self.dec = nn.ParameterDict()
        g = generator
        for level in st.sweep_levels:
            m = st.arity**level
            for store in (self.enc, self.dec):
                q = torch.linalg.qr(torch.randn(m, P, P, generator=g, dtype=torch.float64))[0]
                store[str(level)] = nn.Parameter((q / math.sqrt(st.arity)).to(dtype).contiguous())

    # ------------------------------------------------------------------ structure helpers
    def near_weight(self) -> Tensor:
        """Near-field maps with the diagonal mask (and a fixed unit diagonal) applied, shape
        (#near, P, P)."""
        w = self.near * self.near_mask
        return w if self.near_eye is None else w + self.near_eye

    def num_parameters(self) -> int:
        """Effective number of weights (masked-out diagonal entries not counted)."""
        count = int(self.near_mask.sum())
        for p in list(self.bridge.values()) + list(self.enc.values()) + list(self.dec.values()):
            count += p.numel()
        return count

    @torch.no_grad()
    def set_near_from(self, M: Tensor) -> None:
        """Set the near-field maps to the corresponding P x P blocks of ``M`` (shape (n, n)),
        in this block's ordering (patch-Morton order in 2-D), and zero the bridges."""
        P, N = self.leaf, self.n // self.leaf
        Mb = M.to(self.near.dtype).reshape(N, P, N, P).permute(0, 2, 1, 3)
        self.near.copy_(Mb[self.near_t, self.near_s] * self.near_mask)
        for p in self.bridge.values():
            p.zero_()

    # ------------------------------------------------------------------ application
    def _sweep(self, x: Tensor, transpose: bool) -> Tensor:
        st, P = self.structure, self.leaf
        N, a = st.num_leaves, st.arity
        lead = x.shape[:-1]
        if x.shape[-1] != self.n:
            raise ValueError(
                f"GFMMBlock expects vectors of length n={self.n}. Got shape {tuple(x.shape)}."
            )
        X = x.reshape(-1, N, P)
        B = X.shape[0]
        W, t, s = self.near_weight(), self.near_t, self.near_s
        if transpose:
            W, t, s = W.transpose(-1, -2), s, t
        y = torch.zeros(B, N, P, dtype=x.dtype, device=x.device)
        y = y.index_add(1, t, torch.einsum("kij,bkj->bki", W, X[:, s]))
        levels = st.sweep_levels
        if levels:
            up, down = (self.dec, self.enc) if transpose else (self.enc, self.dec)
            h = {st.levels: X}
            for level in range(st.levels, levels[0] - 1, -1):
                Wu = up[str(level)].transpose(-1, -2) if transpose else up[str(level)]
                v = torch.einsum("kij,bkj->bki", Wu, h[level])
                h[level - 1] = v.reshape(B, a ** (level - 1), a, P).sum(2)
            d = None
            for level in range(levels[0] - 1, st.levels):
                g = torch.zeros(B, a**level, P, dtype=x.dtype, device=x.device)
                if str(level) in self.bridge:
                    Wb = self.bridge[str(level)]
                    bt, bs = getattr(self, f"bt{level}"), getattr(self, f"bs{level}")
                    if transpose:
                        Wb, bt, bs = Wb.transpose(-1, -2), bs, bt
                    g = g.index_add(1, bt, torch.einsum("kij,bkj->bki", Wb, h[level][:, bs]))
                if d is not None:
                    Wd = down[str(level)].transpose(-1, -2) if transpose else down[str(level)]
                    g = g + torch.einsum("kij,bkj->bki", Wd, d.repeat_interleave(a, dim=1))
                d = g
            Wd = down[str(st.levels)]
            Wd = Wd.transpose(-1, -2) if transpose else Wd
            y = y + torch.einsum("kij,bkj->bki", Wd, d.repeat_interleave(a, dim=1))
        return y.reshape(*lead, self.n)

    def forward(self, x: Tensor) -> Tensor:
        """``y = M x`` for ``x`` of shape ``(*, n)`` (vectors along the last axis)."""
        return self._sweep(x, transpose=False)

    def rmatvec(self, x: Tensor) -> Tensor:
        """``y = M^T x`` by the transposed graph (decoder and encoder swap roles)."""
        return self._sweep(x, transpose=True)

    @torch.no_grad()
    def dense(self) -> Tensor:
        """The dense ``(n, n)`` matrix ``M`` (n matvecs with identity columns; no autograd)."""
        eye = torch.eye(self.n, dtype=self.near.dtype, device=self.near.device)
        return self.forward(eye).T

    @torch.no_grad()
    def transposed(self) -> GFMMBlock:
        """A new GFMM-block whose operator is this one's transpose (``lower`` <-> ``upper``).

        The transposed graph is again a GFMM-block: near and bridge maps are transposed and
        move to the mirrored node pairs, and the encoder and decoder swap roles (each
        transposed). ``result.dense()`` equals ``self.dense().T`` to round-off; the copy does
        not share parameters with ``self``.
        """
        if self.diag == "unit":
            raise ValueError(
                "GFMMBlock.transposed: a unit-diagonal block has no unit-diagonal mirror in "
                "this parametrization (the upper factor is triangular); use diag='triangular'."
            )
        mirror = {"lower": "upper", "upper": "lower", "none": "none"}[self.triangle]
        out = GFMMBlock(
            self.n,
            self.leaf,
            dim=self.dim,
            triangle=mirror,  # type: ignore[arg-type]
            band=self.band,
            diag=self.diag,  # type: ignore[arg-type]
            dtype=self.near.dtype,
        ).to(self.near.device)

        def moved(src_t: Tensor, src_s: Tensor, dst_t: Tensor, dst_s: Tensor) -> Tensor:
            index = {(int(a), int(b)): k for k, (a, b) in enumerate(zip(src_s, src_t, strict=True))}
            return torch.as_tensor(
                [index[(int(a), int(b))] for a, b in zip(dst_t, dst_s, strict=True)],
                dtype=torch.int64,
            )

        k = moved(self.near_t, self.near_s, out.near_t, out.near_s)
        out.near.copy_(self.near[k].transpose(-1, -2) * out.near_mask)
        for level, w in self.bridge.items():
            k = moved(
                getattr(self, f"bt{level}"),
                getattr(self, f"bs{level}"),
                getattr(out, f"bt{level}"),
                getattr(out, f"bs{level}"),
            )
            out.bridge[level].copy_(w[k].transpose(-1, -2))
        for level in self.enc:
            out.enc[level].copy_(self.dec[level].transpose(-1, -2))
            out.dec[level].copy_(self.enc[level].transpose(-1, -2))
        return out
