"""Peer settings: each library peer at its documented defaults and at our budget.

A peer run only at settings of our choosing can be handicapped (scikit-learn's
``randomized_svd`` at ``n_iter='auto'`` does 4-7 power iterations where ``rsvd`` does 2), and
one run only at its defaults can be unfairly cheap or inaccurate. Every benchmark therefore
runs each peer of :data:`PEER_SETTINGS` twice, as two labelled rows:

- ``<name> [defaults]``: the library's documented defaults (the registered factorizer's
  parameters mapped to them);
- ``<name> [budget]``: the budget of neuralfactor's own randomized SVD (``rsvd``: sketch width
  rank + 10, 2 power iterations, orthonormalized after every product), the same work for the
  same accuracy class.

Peers without tunable accuracy parameters (the dense SVDs) run once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "OUR_BUDGET",
    "PEER_SETTINGS",
    "PeerSetting",
    "expand_peers",
    "peer_label",
    "peer_rows",
    "setting_of",
]

#: The sketch budget of neuralfactor's ``rsvd`` (its defaults).
OUR_BUDGET: dict[str, Any] = {"oversample": 10, "n_iter": 2}


@dataclass(frozen=True)
class PeerSetting:
    """How one peer is run at its defaults and at our budget.

    ``defaults`` maps the rank to the registered factorizer's parameters that reproduce the
    library's documented defaults; ``source`` states those defaults as documented.
    """

    defaults: Callable[[int], dict[str, Any]]
    budget: dict[str, Any]
    source: str


PEER_SETTINGS: dict[str, PeerSetting] = {
    "sklearn-rsvd": PeerSetting(
        defaults=lambda rank: {"oversample": 10, "n_iter": "auto"},
        # our budget and our normalization (QR after every product, as rsvd does): with
        # n_iter=2 scikit-learn's 'auto' normalizer is 'none', which is a weaker algorithm
        budget={**OUR_BUDGET, "power_iteration_normalizer": "QR"},
        source=(
            "sklearn.utils.extmath.randomized_svd: n_oversamples=10, n_iter='auto' (7 when "
            "rank < 0.1 min(m, n), else 4), power_iteration_normalizer='auto' (LU when "
            "n_iter > 2)"
        ),
    ),
    "torch-lowrank": PeerSetting(
        # torch.svd_lowrank's default q = 6 cannot return more than 6 columns: the default row
        # keeps niter=2 and q = max(6, rank) (no oversampling beyond the default width).
        defaults=lambda rank: {"oversample": max(0, 6 - rank), "n_iter": 2},
        budget=dict(OUR_BUDGET),
        source="torch.svd_lowrank: q=6 (here max(6, rank)), niter=2",
    ),
}


def peer_label(name: str, setting: str) -> str:
    """The row label of a peer run at ``setting`` ('defaults' or 'budget')."""
    return f"{name} [{setting}]"


def expand_peers(methods: Iterable[str], rank: int) -> list[tuple[str, str, dict[str, Any]]]:
    """``(label, registered name, params)`` per row: peers twice (defaults, budget).

    Methods that are not in :data:`PEER_SETTINGS` give one row with their own name and no
    parameters.
    """
    rows: list[tuple[str, str, dict[str, Any]]] = []
    for name in methods:
        peer = PEER_SETTINGS.get(name)
        if peer is None:
            rows.append((name, name, {}))
            continue
        rows.append((peer_label(name, "defaults"), name, peer.defaults(rank)))
        rows.append((peer_label(name, "budget"), name, dict(peer.budget)))
    return rows


def peer_rows(
    methods: Iterable[str], rank: int, both_settings: bool = True
) -> list[tuple[str, str, dict[str, Any], str]]:
    """``(label, registered name, params, setting)`` per row of a suite's case.

    With ``both_settings`` the peers run twice (:func:`expand_peers`; ``setting`` is
    'defaults' or 'budget'); without, every method runs once at its registered defaults.
    ``setting`` is '' for rows that are not peers.
    """
    if not both_settings:
        return [(name, name, {}, "") for name in methods]
    return [
        (label, name, params, label[len(name) + 2 : -1] if label != name else "")
        for label, name, params in expand_peers(methods, rank)
    ]


def setting_of(method: str, params: dict[str, Any], rank: int) -> str:
    """Which setting ('defaults', 'budget' or '') a peer's recorded parameters are."""
    peer = PEER_SETTINGS.get(method)
    if peer is None:
        return ""
    sub = {k: params.get(k) for k in peer.budget}
    if sub == peer.defaults(rank):
        return "defaults"
    if sub == peer.budget:
        return "budget"
    return "custom"
