"""PyTorch drop-ins that compute through the golden models (and so through the hardware).

Each module quantizes its input to the block's input format, runs the operator's integer
``emulate`` (bit-exact with the RTL) and dequantizes the result, so what a model computes with
these modules is what the hardware would compute. They are for evaluation: the forward pass runs
in NumPy on the CPU and returns a tensor without autograd history.

Scale policy
------------
``"format"`` (the default, and what a block fed straight from the previous layer's fixed-point
output sees): a real value v becomes the code ``in_fmt.encode(v)``, i.e. v / 2**-frac_bits
rounded half to even and saturated at the format's range (s6.10 covers [-32, 32)). Values
outside the range saturate, as the hardware's input word would.
"""

from __future__ import annotations

import numpy as np
import torch

from . import gelu as gelu_model
from . import softmax as softmax_model

__all__ = ["Softmax", "GELU"]


def _through(fn, x: torch.Tensor, in_fmt, out_fmt) -> torch.Tensor:
    codes = in_fmt.encode(x.detach().to("cpu", torch.float64).numpy())
    y = out_fmt.decode(fn(codes))
    return torch.from_numpy(np.ascontiguousarray(y)).to(device=x.device, dtype=x.dtype)


class Softmax(torch.nn.Module):
    """Drop-in for :class:`torch.nn.Softmax` computing through :func:`golden.softmax.emulate`.

    Parameters
    ----------
    dim : int
        The dimension softmax runs over (its length must be at most ``params.max_len``).
    params : SoftmaxParams, optional
        The hardware configuration (default: ``SoftmaxParams()``).
    """

    def __init__(self, dim: int | None = -1, params: softmax_model.SoftmaxParams | None = None):
        super().__init__()
        if dim is None:
            raise ValueError("golden.nn.Softmax needs an explicit dim (the hardware's row axis)")
        self.dim = dim
        self.params = params if params is not None else softmax_model.SoftmaxParams()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        moved = x.movedim(self.dim, -1)
        y = _through(lambda c: softmax_model.emulate(p, c), moved, p.in_fmt, p.out_fmt)
        return y.movedim(-1, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, params={self.params.name}"


class GELU(torch.nn.Module):
    """Drop-in for :class:`torch.nn.GELU` computing through :func:`golden.gelu.emulate`.

    Parameters
    ----------
    approximate : str
        Accepted for signature compatibility with torch; only ``"none"`` (exact erf GELU, which
        the hardware approximates) is meaningful.
    params : GeluParams, optional
        The hardware configuration (default: ``GeluParams()``).
    """

    def __init__(self, approximate: str = "none", params: gelu_model.GeluParams | None = None):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', not {approximate!r}")
        self.approximate = approximate
        self.params = params if params is not None else gelu_model.GeluParams()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        return _through(lambda c: gelu_model.emulate(p, c), x, p.in_fmt, p.out_fmt)

    def extra_repr(self) -> str:
        return f"params={self.params.name}"
