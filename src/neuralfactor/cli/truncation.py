"""``--truncate-with NAME|MODEL_DIR[+refine]``: resolved by the library.

:func:`neuralfactor.vlasov.run.make_truncation` owns the resolution; this name is kept for
scripts that imported it from here.
"""

from __future__ import annotations

from neuralfactor.vlasov.run import make_truncation

__all__ = ["make_truncation"]
