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

MacLinear
---------

:class:`MacLinear` holds 4-bit weight patterns, their per-weight format (posit or FixP4) and a
per-output-channel scale, as :mod:`golden.quant` produces them. Its forward pass quantizes the
input to ``act_fmt`` codes, runs :func:`golden.posit_mac.emulate` (bit-exact with the MAC's
accumulator) for every output channel and turns the accumulator codes back into reals::

    y[..., c] = ((acc[..., c] * 2**-acc_frac) * act_scale) * weight_scale[c] + bias[c]

evaluated in float64 in that order, then cast to the input's dtype. Like the other golden.nn
drop-ins it is for evaluation: the result has no autograd history.

Its activation scale policy:
A real activation ``x`` becomes the code ``act_fmt.encode(x / act_scale)`` (nearest, ties to
even, saturating). ``act_scale`` is a choice:

* static (a float, or set by :meth:`MacLinear.calibrate` from calibration data): one scale for
  the layer, ``max|x| / act_fmt.max_value`` over the calibration data, so the largest
  calibration activation lands on the format's largest code; later inputs beyond it
  saturate, as in hardware with a fixed requantization shift;
* dynamic (``None``, the default): the same rule applied to each forward call's input
  (per tensor), which never saturates but needs a max-reduction before the MAC.
"""

from __future__ import annotations

import numpy as np
import torch

from . import gelu as gelu_model
from . import layernorm as layernorm_model
from . import posit_mac, quant
from . import softmax as softmax_model
from .formats import FixFormat

__all__ = ["Softmax", "GELU", "LayerNorm", "MacLinear"]


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


class LayerNorm(torch.nn.Module):
    """Drop-in for :class:`torch.nn.LayerNorm` computing through
    :func:`golden.layernorm.emulate`.

    Same constructor and parameters (``weight``, ``bias``), so a torch LayerNorm's state dict
    loads unchanged. gamma and beta are quantized to ``gamma_fmt`` / ``beta_fmt`` (saturating)
    as the hardware's parameter memory would hold them; ``eps`` replaces ``params.eps``.

    Parameters
    ----------
    normalized_shape : int or tuple of one int
        The channel count (the hardware normalises over the last axis only).
    eps : float
        Added to the variance.
    elementwise_affine : bool
        Learnable gamma and beta, as in torch.
    params : LayerNormParams, optional
        The hardware configuration (default: ``LayerNormParams()``).
    """

    def __init__(
        self,
        normalized_shape,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        params: layernorm_model.LayerNormParams | None = None,
    ):
        super().__init__()
        shape = (
            (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        )
        if len(shape) != 1:
            raise ValueError(
                f"golden.nn.LayerNorm normalises over the last axis only; "
                f"normalized_shape must be one int, not {normalized_shape!r}"
            )
        self.normalized_shape = shape
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        base = params if params is not None else layernorm_model.LayerNormParams()
        self.params = base.replace(eps=eps)
        if elementwise_affine:
            self.weight = torch.nn.Parameter(torch.ones(shape))
            self.bias = torch.nn.Parameter(torch.zeros(shape)) if bias else None
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        gamma = beta = None
        if self.weight is not None:
            gamma = p.gamma_fmt.encode(self.weight.detach().to("cpu", torch.float64).numpy())
        if self.bias is not None:
            beta = p.beta_fmt.encode(self.bias.detach().to("cpu", torch.float64).numpy())
        return _through(
            lambda c: layernorm_model.emulate(p, c, gamma, beta), x, p.in_fmt, p.out_fmt
        )

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, params={self.params.name}"


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


#: The MAC's default activation format, s4.4.
ACT_FMT = FixFormat(4, 4)

# emulate() sees blocks of at most this many weight-activation pairs
_BLOCK_ELEMENTS = 1 << 21


class MacLinear(torch.nn.Module):
    """Linear layer whose dot products run through :func:`golden.posit_mac.emulate`.

    Parameters
    ----------
    codes : int array or tensor, shape [out, in]
        4-bit weight patterns 0 .. 15.
    w_is_posit : bool array or tensor, shape [out, in]
        Per-weight format (all false for ``fixp`` params, all true for posit-only weights).
    weight_scale : float array or tensor, shape [out, 1] or [out]
        Per-output-channel scale.
    bias : array or tensor, shape [out], optional
        Float bias, added after the MAC.
    params : MacParams, optional
        MAC configuration (default ``MacParams()``: mixed, es=1, s4.4 activations). Mode
        ``posit`` (posit activations) is not a Linear layer on real inputs and is rejected.
    act_scale : float or None
        Static activation scale, or None for dynamic per-tensor (see the module docstring).
    """

    def __init__(
        self,
        codes,
        w_is_posit,
        weight_scale,
        bias=None,
        params: posit_mac.MacParams | None = None,
        act_scale: float | None = None,
    ):
        super().__init__()
        p = params if params is not None else posit_mac.MacParams()
        if p.mode is posit_mac.MacMode.POSIT:
            raise ValueError("MacLinear takes real activations: use mode mixed or fixp")
        codes = np.asarray(_numpy(codes))
        w_is_posit = np.asarray(_numpy(w_is_posit), dtype=bool)
        if codes.ndim != 2 or w_is_posit.shape != codes.shape:
            raise ValueError(
                f"codes {codes.shape} and w_is_posit {w_is_posit.shape} must be one [out, in] shape"
            )
        if p.mode is posit_mac.MacMode.FIXP and w_is_posit.any():
            raise ValueError("fixp params take FixP4 weights only (w_is_posit all false)")
        scale = np.asarray(_numpy(weight_scale), dtype=np.float64).reshape(-1)
        if scale.shape != (codes.shape[0],):
            raise ValueError(
                f"weight_scale must have one entry per output channel ({codes.shape[0]})"
            )
        if codes.shape[1] > p.max_terms:
            raise ValueError(
                f"{codes.shape[1]} inputs exceed the accumulator's max_terms={p.max_terms}"
            )
        self.params = p
        if codes.dtype.kind not in "iu" or ((codes < 0) | (codes > 15)).any():
            raise ValueError("codes must be integer 4-bit patterns 0 .. 15")
        self.codes = codes.astype(np.int64)
        self.w_is_posit = w_is_posit
        self.weight_scale = scale
        self.bias = None if bias is None else np.asarray(_numpy(bias), dtype=np.float64)
        if self.bias is not None and self.bias.shape != (codes.shape[0],):
            raise ValueError(f"bias must have one entry per output channel ({codes.shape[0]})")
        self.act_scale = _check_scale(act_scale)

    @property
    def in_features(self) -> int:
        return self.codes.shape[1]

    @property
    def out_features(self) -> int:
        return self.codes.shape[0]

    @classmethod
    def from_linear(
        cls,
        linear: torch.nn.Linear,
        mode: str = "mixed",
        budget: float = 0.25,
        importance=None,
        act_fmt: FixFormat = ACT_FMT,
        es: int = 1,
        act_scale: float | None = None,
    ) -> MacLinear:
        """Quantize a float ``nn.Linear`` with :mod:`golden.quant` and wrap it.

        Parameters
        ----------
        linear : nn.Linear
            The float layer (a :class:`golden.quant.QuantLinear` keeps the scale and mask it
            was trained with; ``mode`` is then its own and ``budget``/``importance`` unused).
        mode : str
            ``"mixed"`` (:func:`~golden.quant.mixed_quantize`, MAC mode mixed),
            ``"posit4"`` (:func:`~golden.quant.quantize_posit4`, MAC mode mixed with every
            weight a posit) or ``"fixp4"`` (:func:`~golden.quant.quantize_fixp4`, MAC mode
            fixp).
        budget, importance
            For ``mixed``: see :func:`~golden.quant.mixed_quantize`.
        act_fmt : FixFormat
            Activation format (signed, 4 or 8 bits).
        es : int
            Posit exponent bits, 0 to 2.
        act_scale : float or None
            Static activation scale, or None for dynamic (see :meth:`calibrate`).
        """
        fixp = posit_mac.MacMode.FIXP
        mixed = posit_mac.MacMode.MIXED
        if isinstance(linear, quant.QuantLinear):
            mode, es = linear.mode, linear.es
            q = linear.export()
        elif mode == "mixed":
            q = quant.mixed_quantize(linear.weight, budget, importance, es)
        elif mode == "posit4":
            q = quant.quantize_posit4(linear.weight, es)
            q = quant.MixedQuantized(q.codes, torch.ones_like(q.codes, dtype=torch.bool), *q[1:])
        elif mode == "fixp4":
            q = quant.quantize_fixp4(linear.weight)
            q = quant.MixedQuantized(q.codes, torch.zeros_like(q.codes, dtype=torch.bool), *q[1:])
        else:
            raise ValueError(f"mode must be 'mixed', 'posit4' or 'fixp4', not {mode!r}")
        params = posit_mac.MacParams(
            es=es,
            act_fmt=act_fmt,
            mode=fixp if mode == "fixp4" else mixed,
            max_terms=max(4096, linear.in_features),
        )
        bias = None if linear.bias is None else linear.bias.detach()
        return cls(q.codes, q.w_is_posit, q.scale, bias, params, act_scale)

    def calibrate(self, x) -> MacLinear:
        """Set a static activation scale from calibration inputs: ``max|x| / act_fmt.max_value``.

        Returns ``self``; an all-zero ``x`` gives scale 1.
        """
        self.act_scale = _max_abs_scale(np.asarray(_numpy(x), dtype=np.float64), self.params)
        return self

    def activation_codes(self, x) -> tuple[np.ndarray, float]:
        """``act_fmt`` codes of an input and the activation scale they were taken with."""
        xf = np.asarray(_numpy(x), dtype=np.float64)
        scale = self.act_scale if self.act_scale is not None else _max_abs_scale(xf, self.params)
        return self.params.act_fmt.encode(xf / scale), scale

    def accumulate(self, a_codes: np.ndarray) -> np.ndarray:
        """Accumulator codes ``[..., out]`` of activation codes ``[..., in]`` (exact)."""
        p = self.params
        lead = a_codes.shape[:-1]
        a = a_codes.reshape(-1, self.in_features)
        out = np.empty((a.shape[0], self.out_features), dtype=np.int64)
        shape = (self.out_features, self.in_features)
        block = max(1, _BLOCK_ELEMENTS // (self.out_features * self.in_features))
        mask = None if p.mode is posit_mac.MacMode.FIXP else self.w_is_posit
        for start in range(0, a.shape[0], block):
            rows = a[start : start + block]
            n = rows.shape[0]
            w = np.broadcast_to(self.codes, (n, *shape))
            acts = np.broadcast_to(rows[:, None, :], (n, *shape))
            out[start : start + n] = posit_mac.emulate(p, w, acts, mask)
        return out.reshape(*lead, self.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"input has {x.shape[-1]} features, the layer {self.in_features}")
        a_codes, scale = self.activation_codes(x)
        acc = self.accumulate(a_codes)
        y = ((acc.astype(np.float64) * 2.0**-self.params.acc_frac) * scale) * self.weight_scale
        if self.bias is not None:
            y = y + self.bias
        return torch.from_numpy(np.ascontiguousarray(y)).to(device=x.device, dtype=x.dtype)

    def extra_repr(self) -> str:
        scale = "dynamic" if self.act_scale is None else f"{self.act_scale:.6g}"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"posits={int(self.w_is_posit.sum())}, act_scale={scale}, params={self.params.name}"
        )


def _numpy(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (
            x.numpy() if x.dtype == torch.bool or not x.is_floating_point() else x.double().numpy()
        )
    return x


def _check_scale(scale):
    if scale is None:
        return None
    scale = float(scale)
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"act_scale must be a positive number or None, not {scale!r}")
    return scale


def _max_abs_scale(x: np.ndarray, p: posit_mac.MacParams) -> float:
    if not np.isfinite(x).all():
        raise ValueError("activations must be finite")
    top = float(np.abs(x).max()) if x.size else 0.0
    return top / p.act_fmt.max_value if top > 0 else 1.0
