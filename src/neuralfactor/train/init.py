"""Network weights drawn from an explicit ``torch.Generator``, never from the global RNG.

PyTorch's layers draw their initial weights from the global generator when they are built.
:func:`build_seeded` builds a network without leaving a trace on the global RNG and then
draws every weight again from the caller's generator, with PyTorch's own default
initialization (He et al. 2015, "Delving deep into rectifiers": Kaiming-uniform with
``a = sqrt(5)`` for weights, uniform in ``+-1/sqrt(fan_in)`` for biases) in the order the layers
were built. The weights are therefore bit-identical to a build after
``torch.manual_seed(seed)`` with ``generator = torch.Generator().manual_seed(seed)``, but no
global state is read or written.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

__all__ = ["build_seeded", "init_parameters"]

M = TypeVar("M", bound=nn.Module)

#: layers whose default parameters are constants (ones, zeros): nothing to draw
_CONSTANT_INIT = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)


def init_parameters(module: M, generator: torch.Generator) -> M:
    """Draw every parameter of ``module`` from ``generator`` with PyTorch's default rule.

    Linear and convolution layers get ``kaiming_uniform_(weight, a=sqrt(5))`` and a bias
    uniform in ``+-1/sqrt(fan_in)``, exactly as their ``reset_parameters`` draws them from the
    global RNG; normalization layers keep their constant parameters. A module whose parameters
    follow another rule must define ``init_parameters(generator)`` itself (it is then called
    instead). Returns ``module``.

    Raises
    ------
    TypeError
        A layer with parameters of a kind this function does not know.
    """
    custom = getattr(module, "init_parameters", None)
    if callable(custom):
        custom(generator)
        return module
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, (nn.Linear, nn.modules.conv._ConvNd)):
                nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
                if layer.bias is not None:
                    fan_in, _ = nn.init._calculate_fan_in_and_fan_out(layer.weight)
                    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
                    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
            elif not isinstance(layer, _CONSTANT_INIT) and any(
                True for _ in layer.parameters(recurse=False)
            ):
                raise TypeError(
                    f"init_parameters cannot draw the parameters of a {type(layer).__name__} "
                    f"from a generator; give {type(module).__name__} an "
                    f"init_parameters(generator) method."
                )
    return module


def build_seeded(factory: Callable[[], M], generator: torch.Generator) -> M:
    """``factory()`` with its weights drawn from ``generator`` (:func:`init_parameters`).

    The build itself runs inside ``torch.random.fork_rng``, so the global RNG is left exactly
    as it was.
    """
    with torch.random.fork_rng(devices=[]):
        module = factory()
    return init_parameters(module, generator)
