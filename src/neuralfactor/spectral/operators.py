"""Operators for NeuralSVD, each with a sampler and Monte Carlo (or exact) moments.

An operator here knows how to draw a batch and how to turn function values on it into the
moments of :mod:`neuralfactor.spectral.objectives`:

* ``features(net, batch) -> (F, TF, w)`` for self-adjoint (EVD) operators: function values
  ``F`` (B, L), the operator applied ``TF`` (B, L) and weights ``w`` (B,) such that
  ``<f_i, T f_j> ~ sum_b w_b F_bi TF_bj`` and ``<f_i, f_j> ~ sum_b w_b F_bi F_bj`` without bias;
* ``svd_moments(pair, batch, sequential)`` for the SVD form of a finite matrix.

Operators
---------
MatrixOperator
    A finite matrix ``A`` (m, n); functions are tables on the column (``f``) and row (``g``)
    index sets with the counting measure. ``form='evd'`` needs ``A`` symmetric.
KernelOperator
    ``(K f)(x) = E_{x' ~ p}[k(x, x') f(x')]`` with a Gaussian RBF kernel and ``p`` the
    empirical distribution of samples; minibatch estimates are U-statistics.
SchrodingerOperator
    ``T = shift - H`` with ``H = -Laplacian + V`` on R^d (Lebesgue measure), ``V`` the 2-D
    hydrogen ``-1/|x|`` or the harmonic oscillator ``|x|^2``; Laplacian by exact autograd or
    central finite differences; importance sampling from a Gaussian (Cartesian or radial), or
    (2-D) a randomly shifted polar lattice (randomized quasi-Monte Carlo).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from neuralfactor.core.validation import (
    check_matrix,
    check_option,
    check_positive_float,
    check_positive_int,
)
from neuralfactor.spectral.models import FunctionPair, TabularFunctions
from neuralfactor.spectral.objectives import gram

__all__ = [
    "Batch",
    "MatrixOperator",
    "KernelOperator",
    "SchrodingerOperator",
    "LAPLACIANS",
    "SAMPLERS",
    "check_lattice_batch",
    "POTENTIALS",
    "evd_moments",
]

Laplacian = Literal["autograd", "fd"]
LAPLACIANS: tuple[str, ...] = ("autograd", "fd")
Sampler = Literal["gaussian", "radial", "lattice"]
SAMPLERS: tuple[str, ...] = ("gaussian", "radial", "lattice")
POTENTIALS: tuple[str, ...] = ("coulomb", "harmonic")


@dataclass(frozen=True)
class Batch:
    """Samples of one step: indices or points, and per-sample weights (None = exact)."""

    x: Tensor | None
    w: Tensor | None = None
    y: Tensor | None = None  # row indices for the SVD form


def check_lattice_batch(batch: int, lattice_theta: int, *, caller: str) -> None:
    """The lattice sampler splits a batch into two rules of ``lattice_theta`` angles each."""
    if batch % (2 * lattice_theta):
        raise ValueError(
            f"The 'batch' parameter of {caller} must be a multiple of 2 * lattice_theta = "
            f"{2 * lattice_theta} for the lattice sampler (two rules of lattice_theta angles). "
            f"Got {batch}."
        )


def _check_modes(modes: int, rank: int, what: str) -> int:
    modes = check_positive_int(modes, name="modes", caller=what)
    if modes > rank:
        raise ValueError(
            f"The 'modes' parameter of {what} must be an int in [1, rank={rank}]: the operator has "
            f"only {rank} nonzero singular values, so further modes are zero functions. "
            f"Got {modes}."
        )
    return modes


def evd_moments(
    F: Tensor, TF: Tensor, w: Tensor, *, sequential: bool, split: bool
) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
    """``(diag, P)`` for :func:`nestedlora_loss_evd` from EVD features.

    ``diag_l = sum_b w_b F_bl TF_bl``; ``P`` is the Gram matrix, as a pair from the two halves of
    the batch when ``split`` (unbiased quadratic term; each half's weights are doubled).
    """
    diag = (w[:, None] * F * TF).sum(0)
    if not split:
        return diag, gram(F, w, sequential=sequential)
    h = F.shape[0] // 2
    if h < 1 or F.shape[0] % 2:
        raise ValueError(f"An unbiased split needs an even batch size >= 2. Got {F.shape[0]}.")
    return diag, (
        gram(F[:h], 2 * w[:h], sequential=sequential),
        gram(F[h:], 2 * w[h:], sequential=sequential),
    )


class MatrixOperator:
    """A finite matrix as an operator between ``R^n`` (columns, ``f``) and ``R^m`` (rows, ``g``).

    Parameters
    ----------
    A : Tensor of shape (m, n)
    form : {'svd', 'evd'}
        ``'evd'`` requires ``A`` symmetric (to ``sym_tol`` relative Frobenius error) and learns
        ``f = g``; a non-symmetric matrix is refused with a pointer to ``form='svd'``.

    Notes
    -----
    The measure is the counting measure, so the minimizer is ``f_l = sqrt(s_l) v_l`` with
    ``v_l`` the unit right singular vectors. Minibatches draw row and column indices uniformly
    with replacement; the cross term is then ``m n E[g_i A_ij f_j]``.
    """

    def __init__(self, A: Tensor, *, form: Literal["svd", "evd"] = "svd", sym_tol: float = 1e-10):
        A = check_matrix(A, name="A", caller="MatrixOperator")
        if A.ndim != 2:
            raise ValueError(
                f"The 'A' parameter of MatrixOperator must be 2-D. Got {tuple(A.shape)}."
            )
        self.form = check_option(form, ("svd", "evd"), name="form", caller="MatrixOperator")
        self.A = A
        self.m, self.n = A.shape
        if form == "evd":
            asym = math.inf
            if self.m == self.n:
                den = torch.linalg.matrix_norm(A).clamp_min(torch.finfo(A.dtype).tiny)
                asym = float(torch.linalg.matrix_norm(A - A.mT) / den)
            if asym > sym_tol:
                raise ValueError(
                    f"MatrixOperator(form='evd') needs a self-adjoint (symmetric) matrix; got "
                    f"shape {tuple(A.shape)} with relative asymmetry {asym:.2e} > {sym_tol:g}. "
                    f"Use form='svd' for a general operator."
                )
        self.rank = int(torch.linalg.matrix_rank(A))

    @property
    def evd(self) -> bool:
        return self.form == "evd"

    def make_net(
        self, modes: int, *, generator: torch.Generator | None = None, scale: float = 0.1
    ) -> FunctionPair:
        _check_modes(modes, self.rank, "MatrixOperator")
        f = TabularFunctions(self.n, modes, scale=scale, generator=generator, dtype=self.A.dtype)
        g = (
            None
            if self.evd
            else TabularFunctions(
                self.m, modes, scale=scale, generator=generator, dtype=self.A.dtype
            )
        )
        return FunctionPair(f, g)

    def sample(self, batch: int | None, generator: torch.Generator | None = None) -> Batch:
        """Uniform indices with replacement (``None``: the exact, full operator)."""
        if batch is None:
            return Batch(None)
        batch = check_positive_int(batch, name="batch", caller="MatrixOperator.sample")
        dev = self.A.device
        J = torch.randint(self.n, (batch,), generator=generator, device=dev)
        I = None if self.evd else torch.randint(self.m, (batch,), generator=generator, device=dev)
        return Batch(J, y=I)

    def features(self, net: FunctionPair, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        if not self.evd:
            raise ValueError("features() is for the EVD form; use svd_moments for form='svd'.")
        table = net.f(None)
        if batch.x is None:
            w = torch.ones(self.n, dtype=table.dtype, device=table.device)
            return table, self.A @ table, w
        J = batch.x
        w = torch.full((J.shape[0],), self.n / J.shape[0], dtype=table.dtype, device=table.device)
        return table[J], self.A[J] @ table, w

    def svd_moments(self, net: FunctionPair, batch: Batch, *, sequential: bool, split: bool):
        """``(cross, P, Q)`` for :func:`nestedlora_loss` (exact when ``batch.x`` is None)."""
        Ft, Gt = net.f(None), net.g(None)
        if batch.x is None:
            cross = (Gt * (self.A @ Ft)).sum(0)
            return (
                cross,
                gram(Ft, torch.ones_like(Ft[:, 0]), sequential=sequential),
                gram(Gt, torch.ones_like(Gt[:, 0]), sequential=sequential),
            )
        J, I = batch.x, batch.y
        B = J.shape[0]
        F, G = Ft[J], Gt[I]
        a = self.A[I, J]
        cross = (self.m * self.n / B) * (G * a[:, None] * F).sum(0)
        wf = torch.full((B,), self.n / B, dtype=F.dtype, device=F.device)
        wg = torch.full((B,), self.m / B, dtype=F.dtype, device=F.device)
        if not split:
            return cross, gram(F, wf, sequential=sequential), gram(G, wg, sequential=sequential)
        h = B // 2
        P = (
            gram(F[:h], 2 * wf[:h], sequential=sequential),
            gram(F[h:], 2 * wf[h:], sequential=sequential),
        )
        Q = (
            gram(G[:h], 2 * wg[:h], sequential=sequential),
            gram(G[h:], 2 * wg[h:], sequential=sequential),
        )
        return cross, P, Q

    def reference(self, modes: int) -> tuple[Tensor, Tensor, Tensor]:
        """``(values, left, right)`` of the exact truncated SVD/EVD (descending)."""
        if self.evd:
            lam, Q = torch.linalg.eigh(self.A)
            lam, Q = lam.flip(0)[:modes], Q.flip(1)[:, :modes]
            return lam, Q, Q
        U, S, Vh = torch.linalg.svd(self.A, full_matrices=False)
        return S[:modes], U[:, :modes], Vh[:modes].mT


def rbf_kernel(X: Tensor, Y: Tensor, bandwidth: float) -> Tensor:
    """``exp(-|x - y|^2 / (2 h^2))``, shapes (N, d), (M, d) -> (N, M)."""
    d2 = torch.cdist(X, Y).square()
    return torch.exp(-d2 / (2.0 * bandwidth**2))


class KernelOperator:
    """Integral operator ``(Kf)(x) = E_{x'~p}[k(x, x') f(x')]``, Gaussian RBF, ``p`` = samples.

    Parameters
    ----------
    X : Tensor of shape (N, d)
        Samples defining the data distribution ``p`` (their empirical measure).
    bandwidth : float
        RBF length scale ``h``.

    Notes
    -----
    Eigenpairs of ``K`` on ``L^2(p)`` are those of the matrix ``K_N / N`` with eigenfunctions
    ``sqrt(N) u`` on the samples (:meth:`reference`); the Nyström method extends them from a
    subset (:meth:`nystrom`). Minibatch moments: ``TF_b = mean_{b' != b} k(x_b, x_b') f(x_b')``,
    an unbiased U-statistic. Functions are either an MLP of ``x`` or a table over the samples.
    """

    evd = True

    def __init__(self, X: Tensor, bandwidth: float) -> None:
        X = check_matrix(X, name="X", caller="KernelOperator")
        self.X = X
        self.N = X.shape[0]
        self.bandwidth = check_positive_float(bandwidth, name="bandwidth", caller="KernelOperator")
        self._K: Tensor | None = None

    @property
    def K(self) -> Tensor:
        if self._K is None:
            self._K = rbf_kernel(self.X, self.X, self.bandwidth)
        return self._K

    def _values(self, net: FunctionPair, idx: Tensor | None) -> Tensor:
        if isinstance(net.f, TabularFunctions):
            return net.f(idx)
        return net.f(self.X if idx is None else self.X[idx])

    def sample(self, batch: int | None, generator: torch.Generator | None = None) -> Batch:
        if batch is None:
            return Batch(None)
        batch = check_positive_int(batch, name="batch", caller="KernelOperator.sample", minimum=2)
        return Batch(torch.randint(self.N, (batch,), generator=generator, device=self.X.device))

    def features(self, net: FunctionPair, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        if batch.x is None:
            F = self._values(net, None)
            w = torch.full((self.N,), 1.0 / self.N, dtype=F.dtype, device=F.device)
            return F, (self.K.to(F.dtype) @ F) / self.N, w
        idx = batch.x
        B = idx.shape[0]
        F = self._values(net, idx)
        Kb = rbf_kernel(self.X[idx], self.X[idx], self.bandwidth).to(F.dtype)
        Kb = Kb - torch.diag_embed(torch.diagonal(Kb))  # U-statistic: distinct pairs only
        w = torch.full((B,), 1.0 / B, dtype=F.dtype, device=F.device)
        return F, (Kb @ F) / (B - 1), w

    def reference(self, modes: int) -> tuple[Tensor, Tensor]:
        """Top ``modes`` eigenvalues of ``K_N / N`` and eigenfunctions on the samples (N, L)."""
        lam, Q = torch.linalg.eigh(self.K / self.N)
        return lam.flip(0)[:modes], math.sqrt(self.N) * Q.flip(1)[:, :modes]

    def nystrom(
        self, modes: int, landmarks: int, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Nyström (Williams & Seeger 2001): eigenpairs from ``landmarks`` random samples.

        Returns eigenvalues (L,) and the extended eigenfunctions on all samples (N, L).
        Cost O(M^3 + N M L) for ``M`` landmarks.
        """
        landmarks = check_positive_int(landmarks, name="landmarks", caller="nystrom")
        idx = torch.randperm(self.N, generator=generator, device=self.X.device)[:landmarks]
        Xm = self.X[idx]
        lam, Q = torch.linalg.eigh(rbf_kernel(Xm, Xm, self.bandwidth) / landmarks)
        lam, Q = lam.flip(0)[:modes], Q.flip(1)[:, :modes]
        phi_m = math.sqrt(landmarks) * Q  # eigenfunctions on the landmarks
        Knm = rbf_kernel(self.X, Xm, self.bandwidth)
        return lam, (Knm @ phi_m) / (landmarks * lam)


class SchrodingerOperator:
    """``T = shift - H``, ``H = -Laplacian + V`` on ``R^d``, for eigenfunctions by NestedLoRA/SpIN.

    Parameters
    ----------
    potential : {'coulomb', 'harmonic'}
        ``V = -1/|x|`` (hydrogen; the spectrum of ``Laplacian + 1/|x|`` in 2-D is
        ``1/(4 (n + 1/2)^2)`` with degeneracy ``2n + 1``) or ``V = |x|^2`` (oscillator;
        levels ``2k + d``, degeneracy ``C(k + d - 1, d - 1)``).
    dim : int
        ``d``.
    shift : float
        Added to ``-H`` so that the wanted eigenvalues of ``T`` are the top, positive ones
        (0 suits hydrogen; the oscillator needs ``shift`` above its wanted levels).
    laplacian : {'autograd', 'fd'}
        Exact second derivatives by double backward, or central differences with step
        ``fd_step`` (``2d + 1`` evaluations, no double backward; error ``O(h^2)`` plus round-off
        ``O(eps / h^2)``, so prefer float64 with it).
    sampler : {'gaussian', 'radial', 'lattice'}
        Monte Carlo ``x ~ N(0, sigma^2 I)``, or (2-D only) ``|x| ~ |N(0, sigma^2)|`` with a
        uniform angle, whose density ``~ 1/|x|`` cancels the Coulomb singularity so the
        estimator of the potential term has finite variance; or (2-D only) a **randomly
        shifted polar lattice** (randomized quasi-Monte Carlo): each half of a batch of ``B``
        points is its own product rule, ``n_r = B / (2 lattice_theta)`` radii
        ``r = a t / (1 - t)^2`` at ``t_k = (k + u) / n_r`` (``a = lattice_scale``) times
        ``lattice_theta`` equally spaced angles with a random offset ``v``; ``u, v ~ U(0, 1)``
        independent per half. Every point is uniform in ``(t, theta)``, so each half is an
        unbiased estimate of the integral (of any integrable function) and the two halves give
        the unbiased quadratic term; for the smooth, decaying integrands here its error is
        orders of magnitude below Monte Carlo's at the same batch (closed-form hydrogen Gram
        matrix: about 3e-5 r.m.s. with 32 x 16 points per half).
    sigma : float
        Scale of the Gaussian and radial samplers.
    lattice_theta : int
        Angles per rule of the lattice sampler.
    lattice_scale : float
        ``a`` of the lattice sampler's radial map (``r ~ a t`` near the origin, so
        ``n_r / a`` radii per unit length there).
    mask_radius : float, optional
        Multiply every function by ``max(0, 1 - |x|^2 / R^2)`` (Dirichlet box of radius R).
    r_min : float
        ``|x|`` is clamped to ``>= r_min`` in ``V``, so a sample at the origin gives a finite
        value instead of ``inf``/NaN.
    """

    evd = True

    def __init__(
        self,
        potential: str = "coulomb",
        *,
        dim: int = 2,
        shift: float = 0.0,
        laplacian: Laplacian = "fd",
        fd_step: float = 1e-3,
        sampler: Sampler = "gaussian",
        sigma: float = 8.0,
        lattice_theta: int = 16,
        lattice_scale: float = 1.0,
        mask_radius: float | None = None,
        r_min: float = 1e-6,
    ) -> None:
        caller = "SchrodingerOperator"
        self.potential = check_option(potential, POTENTIALS, name="potential", caller=caller)
        self.dim = check_positive_int(dim, name="dim", caller=caller)
        self.shift = float(shift)
        self.laplacian = check_option(laplacian, LAPLACIANS, name="laplacian", caller=caller)
        self.fd_step = check_positive_float(fd_step, name="fd_step", caller=caller)
        self.sampler = check_option(sampler, SAMPLERS, name="sampler", caller=caller)
        if self.sampler in ("radial", "lattice") and self.dim != 2:
            raise ValueError(
                f"sampler={self.sampler!r} is implemented for dim=2 only. Got dim={dim}."
            )
        self.sigma = check_positive_float(sigma, name="sigma", caller=caller)
        self.lattice_theta = check_positive_int(lattice_theta, name="lattice_theta", caller=caller)
        self.lattice_scale = check_positive_float(
            lattice_scale, name="lattice_scale", caller=caller
        )
        self.mask_radius = (
            None
            if mask_radius is None
            else check_positive_float(mask_radius, name="mask_radius", caller=caller)
        )
        self.r_min = check_positive_float(r_min, name="r_min", caller=caller)

    # -- sampling -------------------------------------------------------------------------
    def sample(
        self,
        batch: int,
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> Batch:
        """Draw ``batch`` points and their weights ``1 / (batch q(x))``.

        For ``sampler='lattice'`` the weights are the two rules' weights halved (so that the
        whole batch, like each half with doubled weights, estimates the integral); ``batch``
        must be a multiple of ``2 lattice_theta``.
        """
        batch = check_positive_int(batch, name="batch", caller="SchrodingerOperator.sample")
        if self.sampler == "lattice":
            check_lattice_batch(batch, self.lattice_theta, caller="SchrodingerOperator.sample")
            n_r = batch // (2 * self.lattice_theta)
            halves = [self._lattice_rule(n_r, generator) for _ in range(2)]
            x = torch.cat([h[0] for h in halves]).to(dtype=dtype, device=device)
            w = torch.cat([h[1] for h in halves]).to(dtype=dtype, device=device) / 2
            return Batch(x, w)
        x = torch.randn(batch, self.dim, generator=generator, dtype=dtype, device=device)
        s = self.sigma
        if self.sampler == "gaussian":
            x = s * x
            logq = -(x * x).sum(-1) / (2 * s * s) - self.dim * math.log(math.sqrt(2 * math.pi) * s)
            w = torch.exp(-logq) / batch
        else:
            r = s * x[:, 0].abs()
            theta = 2 * math.pi * torch.rand(batch, generator=generator, dtype=dtype, device=device)
            x = torch.stack([r * torch.cos(theta), r * torch.sin(theta)], -1)
            p_r = 2.0 / (math.sqrt(2 * math.pi) * s) * torch.exp(-r * r / (2 * s * s))
            w = 2 * math.pi * r / (p_r * batch)  # 1 / (B q), q = p_r / (2 pi r)
        return Batch(x, w)

    def _lattice_rule(self, n_r: int, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """One randomly shifted polar rule (float64): nodes (n_r lattice_theta, 2), weights."""
        u = torch.rand(2, generator=generator, dtype=torch.float64)
        a = self.lattice_scale
        t = (torch.arange(n_r, dtype=torch.float64) + u[0]) / n_r  # in (0, 1)
        r = a * t / (1 - t) ** 2
        wr = a * (1 + t) / (1 - t) ** 3 * r / n_r  # dr/dt, the Jacobian r, 1/n_r
        n_t = self.lattice_theta
        theta = (torch.arange(n_t, dtype=torch.float64) + u[1]) * (2 * math.pi / n_t)
        R, TH = torch.meshgrid(r, theta, indexing="ij")
        x = torch.stack([R * torch.cos(TH), R * torch.sin(TH)], -1).reshape(-1, 2)
        w = (wr[:, None] * (2 * math.pi / n_t)).expand(n_r, n_t).reshape(-1)
        return x, w

    # -- the operator ---------------------------------------------------------------------
    def potential_values(self, x: Tensor) -> Tensor:
        """``V(x)``, shape (B,); NaN-free at the origin (``|x|`` clamped at ``r_min``)."""
        r2 = (x * x).sum(-1)
        if self.potential == "coulomb":
            return -1.0 / torch.sqrt(r2).clamp_min(self.r_min)
        return r2

    def _eval(self, net: nn.Module, x: Tensor) -> Tensor:
        f = net(x)
        if self.mask_radius is not None:
            xx = x if x.ndim == 2 else x[0]
            f = f * (1.0 - (xx * xx).sum(-1) / self.mask_radius**2).clamp_min(0.0)[:, None]
        return f

    def laplacian_values(self, net: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(f(x), Laplacian f(x))``, both (B, L), by the configured method."""
        B, d = x.shape
        if self.laplacian == "fd":
            h = self.fd_step
            E = torch.eye(d, dtype=x.dtype, device=x.device) * h
            pts = torch.cat([x[None], x[None] + E[:, None], x[None] - E[:, None]], 0)  # (2d+1,B,d)
            vals = self._eval(net, pts.reshape(-1, d)).reshape(2 * d + 1, B, -1)
            f0 = vals[0]
            lap = (vals[1:].sum(0) - 2 * d * f0) / (h * h)
            return f0, lap
        L = getattr(net, "modes", None)
        if L is None:
            raise TypeError(
                "laplacian='autograd' needs a ParallelMLP-like net with a 'modes' field."
            )
        with torch.enable_grad():
            xr = x.detach().unsqueeze(0).expand(L, B, d).clone().requires_grad_(True)
            f = self._eval_modes(net, xr)  # (B, L), mode l only sees xr[l]
            (g,) = torch.autograd.grad(f.sum(), xr, create_graph=True)  # (L, B, d)
            lap = 0.0
            for k in range(d):
                (gk,) = torch.autograd.grad(g[..., k].sum(), xr, create_graph=True)
                lap = lap + gk[..., k]
        return f, lap.mT

    def _eval_modes(self, net: nn.Module, xr: Tensor) -> Tensor:
        f = net(xr)
        if self.mask_radius is not None:
            m = (1.0 - (xr * xr).sum(-1) / self.mask_radius**2).clamp_min(0.0)  # (L, B)
            f = f * m.mT
        return f

    def apply(self, net: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(F, TF)`` at points ``x`` (B, d): ``T f = shift f + Laplacian f - V f``."""
        F, lap = self.laplacian_values(net, x)
        V = self.potential_values(x.detach())
        return F, self.shift * F + lap - V[:, None] * F

    def features(
        self, net: FunctionPair | nn.Module, batch: Batch
    ) -> tuple[Tensor, Tensor, Tensor]:
        f = net.f if isinstance(net, FunctionPair) else net
        F, TF = self.apply(f, batch.x)
        return F, TF, batch.w
