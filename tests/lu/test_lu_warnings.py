"""Levenberg-Marquardt training prints none of torch's 18 'torch.jit.script is deprecated'
warnings (raised by torch's own first import for forward-mode jvp)."""

import os
import subprocess
import sys

CODE = """
import warnings
warnings.filterwarnings("error", message=r".*torch\\.jit\\.script")
from neuralfactor.lu import LUNetwork, LUTrainConfig, make_operator, train_lu
res = train_lu(make_operator("laplacian-1d", 32), LUNetwork(32, 8), LUTrainConfig(steps=1, cg_iters=3))
print("ok", res.rel_fro < 1)
"""


def test_lm_training_emits_no_jit_deprecation_warning():
    # a fresh interpreter: the warnings come only from the first jvp of a process
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok True")
