"""The classical low-rank toolkit, one import away: NMF (:mod:`.nmf`), nuclear-norm methods
(:mod:`.nuclear`), rank selection (:mod:`.rank_selection`), identifiability and low-rank powers
(:mod:`.identifiability`). Each topic lives in its own module; this module re-exports them.
"""

from __future__ import annotations

from neuralfactor.classical.identifiability import Identifiability, identifiability, lowrank_power
from neuralfactor.classical.nmf import NMF_CONTRACT, NMFFactorizer, nmf, sparse_nmf
from neuralfactor.classical.nuclear import (
    NuclearGDResult,
    factored_nuclear_gd,
    nuclear_norm,
    svt,
)
from neuralfactor.classical.rank_selection import (
    GAP_CRITERIA,
    RANK_METHODS,
    aic_rank,
    gap_rank,
    gavish_donoho_lambda,
    gavish_donoho_omega,
    gavish_donoho_rank,
    gavish_donoho_threshold,
    marchenko_pastur_median,
    select_rank,
)

__all__ = [
    "GAP_CRITERIA",
    "NMF_CONTRACT",
    "RANK_METHODS",
    "Identifiability",
    "NMFFactorizer",
    "NuclearGDResult",
    "aic_rank",
    "factored_nuclear_gd",
    "gap_rank",
    "gavish_donoho_lambda",
    "gavish_donoho_omega",
    "gavish_donoho_rank",
    "gavish_donoho_threshold",
    "identifiability",
    "lowrank_power",
    "marchenko_pastur_median",
    "nmf",
    "nuclear_norm",
    "select_rank",
    "sparse_nmf",
    "svt",
]
