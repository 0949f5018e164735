"""Contracts (valid inputs, accuracy bound) of the randomized, streaming and POD factorizers.

Each :class:`~neuralfactor.core.factorizer.Contract` states what its factorizer must accept
and how far above the Eckart-Young optimum its scaled loss may be at its default budget; the
property suite (``tests/reliability/test_properties.py``) checks both on random input. The
contracts of ``svd``, ``scipy-gesdd``, ``svds-*`` and ``nmf`` sit beside their classes.
"""

from __future__ import annotations

from neuralfactor.core.factorizer import Contract, register_contract

__all__ = ["RANDOMIZED_CONTRACT", "RANDOMIZED_GEMM_CONTRACT", "POD_CONTRACT", "WARM_CONTRACT"]

_RANDOMIZED = (
    "at the defaults (oversample 10, 2 power iterations): scaled loss <= 1.1 x the optimum; "
    "exact when rank + oversample >= min(m, n) or the numerical rank is at most rank + "
    "oversample (Halko, Martinsson & Tropp 2011, 'Finding structure with randomness', sec. 10)"
)
#: ``rsvd``, ``torch-lowrank``, ``sklearn-rsvd``: Householder range finders.
RANDOMIZED_CONTRACT = Contract(accuracy=_RANDOMIZED, loss_factor=1.1)
#: ``rsvd-gemm``: the same range finder orthonormalized by Gram matrices (directions below
#: the Gram floor are dropped, see ``Contract.gram_threshold``).
RANDOMIZED_GEMM_CONTRACT = Contract(accuracy=_RANDOMIZED, loss_factor=1.1, gram_threshold=True)
#: ``warm-subspace``: a batch is a stream (time is dim -3). Its first frame is started cold
#: (4 iterations, basis width rank + 5: within 1.1 x the optimum); each later frame gets one
#: iteration from the previous frame's basis. On time-ordered frames that is close to the
#: optimum; on unrelated frames it is one iteration from an unrelated subspace, hence 3 x.
WARM_CONTRACT = Contract(
    accuracy=(
        "defaults (extra 5, cold_iter 4, n_iter 1): scaled loss <= 3 x the optimum on any "
        "stream, unrelated frames included (one iteration per frame from the previous "
        "frame's basis); time-ordered slowly changing frames come much closer"
    ),
    loss_factor=3.0,
    gram_threshold=True,
)
#: ``pod-basis``: valid after ``fit`` on frames of the same shape; one iteration from the
#: global POD basis (width rank + 5) per frame.
POD_CONTRACT = Contract(
    accuracy=(
        "defaults (extra 5, n_iter 1), fitted on frames of the same shape: scaled loss <= 2 x "
        "the optimum on any frame (one subspace iteration from the global POD basis); frames "
        "like the training frames come much closer"
    ),
    loss_factor=2.0,
    gram_threshold=True,
    fit_on_same_shape=True,
)

for _name in ("rsvd", "torch-lowrank", "sklearn-rsvd"):
    register_contract(_name, RANDOMIZED_CONTRACT)
register_contract("rsvd-gemm", RANDOMIZED_GEMM_CONTRACT)
register_contract("warm-subspace", WARM_CONTRACT)
register_contract("pod-basis", POD_CONTRACT)
