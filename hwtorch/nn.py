"""PyTorch drop-ins that compute through the golden models (and so through the hardware).

Each module quantizes its input to the block's input format, runs the operator's integer
``emulate`` (bit-exact with the RTL) and dequantizes the result, so what a model computes with
these modules is what the hardware would compute. They are for evaluation: the result has no
autograd history.

Backends: the golden models run on torch tensors as they run on NumPy arrays (one source of
numerics, :mod:`golden.arrays`), so the forward pass computes on the input tensor's device and
in its dtype, with no copy to the host and back: a model moved to CUDA emulates on the GPU. The
integer codes are the same as NumPy's on every device (tests/test_array_backends.py); the
dequantized values are the float64 values rounded once to the input's dtype. On a CPU the
per-row units of LayerNorm and softmax run in NumPy on views of the same memory
(:func:`golden.arrays.row_namespace`), and :class:`GELU` reads a table of every input code's
decoded result (:func:`golden.gelu.code_table`) at each value's code: the same numbers, in
fewer passes.

Scale policy
------------
How a tensor's real values become the block's fixed-point input codes.

``"format"`` (the default, and what a block fed straight from the previous layer's fixed-point
output sees): a real value v becomes the code ``in_fmt.encode(v)``, i.e. v / 2**-frac_bits
rounded half to even and saturated at the format's range (s6.10 covers [-32, 32)). Values
outside the range saturate, as the hardware's input word would. This is the only policy of
:class:`GELU` and :class:`Softmax`: neither function is scale invariant, so a scale in front
of the block would have to be undone inside it; the input format *is* the scale (the previous
layer's requantization shift puts its output into s6.10).

:class:`LayerNorm` is invariant to scaling its row (up to eps), so a power-of-two prescale
``x * 2**-k`` in front of it is free in hardware (a shift in the previous layer's
requantization) and it has two more policies:

* ``"static"``: one k per layer, chosen by :meth:`LayerNorm.calibrate` (or
  :func:`calibrate` for a whole model) as the smallest k for which the calibration data's
  largest magnitude fits ``in_fmt``; later rows beyond it saturate, as a fixed shift would.
* ``"dynamic"``: k per row from the row's own largest magnitude (a leading-one detector on
  the row maximum, which the block could compute while it stores the row); never saturates
  and uses all of ``in_fmt``'s precision for rows of small values.

k is limited to -16 .. 16. The hardware's eps is added to the prescaled row's variance
(``eps`` in units of the prescaled input), so for ``k != 0`` the effective eps is
``eps * 4**k``: negligible against DeiT's variances (eps = 1e-6), and it is what the block
would compute.

MacLinear
---------

:class:`MacLinear` holds 4-bit weight patterns, their per-weight format (posit or FixP4) and a
per-output-channel scale, as :mod:`hwtorch.quant` produces them. Its forward pass quantizes the
input to ``act_fmt`` codes, runs :func:`golden.posit_mac.emulate` (bit-exact with the MAC's
accumulator) for every output channel and turns the accumulator codes back into reals::

    y[..., c] = ((acc[..., c] * 2**-acc_frac) * act_scale) * weight_scale[c] + bias[c]

evaluated in float64 in that order, then cast to the input's dtype. Like the other hwtorch.nn
drop-ins it is for evaluation: the result has no autograd history.

Its activation scale policy:
A real activation ``x`` becomes the code ``act_fmt.encode(x / act_scale)`` (nearest, ties to
even, saturating). ``act_scale`` is a choice:

* static (a float, or set by :meth:`MacLinear.calibrate` from calibration data): one scale for
  the layer, ``max|x| / act_fmt.max_value`` over the calibration data, so the largest
  calibration activation lands on the format's largest code; later inputs beyond it
  saturate, as in hardware with a fixed requantization shift;
* dynamic (``None``, the default): the same rule applied to each forward call's input
  (per tensor), which never saturates but needs a max-reduction before the MAC;
* dynamic per row (``"row"``): the rule applied to each input vector (each token) on its
  own, as a per-token requantization would; the result then does not depend on what else is
  in the batch. :func:`patch_model` uses it.

The dot products are :func:`golden.posit_mac.emulate`'s integer model evaluated as one matrix
product (:func:`golden.posit_mac.emulate_matmul`: the same weight table, the same exact sums;
tests/test_nn.py checks it equals ``emulate`` element for element).
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import inspect
from dataclasses import dataclass, field

import numpy as np
import torch

from golden import gelu as gelu_model
from golden import layernorm as layernorm_model
from golden import posit_mac
from golden import softmax as softmax_model
from golden.arrays import clip, is_numpy, lookup, namespace, size
from golden.formats import FixFormat

from . import quant

__all__ = [
    "Softmax",
    "GELU",
    "LayerNorm",
    "MacLinear",
    "EXACT",
    "WeightSpec",
    "PatchSummary",
    "patch_model",
    "calibrate",
    "VisibleSoftmaxAttention",
    "hardware_eps",
    "hardware_attention",
]


def _through(fn, x: torch.Tensor, in_fmt, out_fmt) -> torch.Tensor:
    """``fn`` (an emulate) on ``x``'s codes (``in_fmt.encode``'s, so in range: ``fn`` may
    take them ``checked``), on ``x``'s device, back to ``x``'s dtype."""
    return _decoded(out_fmt, fn(in_fmt.encode(_real(x))), x.dtype)


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
            raise ValueError("hwtorch.nn.Softmax needs an explicit dim (the hardware's row axis)")
        self.dim = dim
        self.params = params if params is not None else softmax_model.SoftmaxParams()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        moved = x.movedim(self.dim, -1)
        fn = functools.partial(softmax_model.emulate, p, checked=True)
        y = _through(fn, moved, p.in_fmt, p.out_fmt)
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
        Added to the variance: any eps >= 0 that torch accepts. The guard bits that resolve it
        are chosen by :func:`hardware_eps` (BERT's 1e-12 needs 30 instead of 16); an eps below
        the hardware's smallest, ``2**-(2 F + 32)`` for F fractional input bits (2.3e-15 at
        s8.8), eps 0 included, is added as that smallest value.
    elementwise_affine : bool
        Learnable gamma and beta, as in torch.
    params : LayerNormParams, optional
        The hardware configuration (default: ``LayerNormParams()``).
    scale : str
        Scale policy, ``"format"`` (default), ``"static"`` or ``"dynamic"`` (see the module
        docstring). ``"static"`` needs :meth:`calibrate` before the first forward pass.
    """

    def __init__(
        self,
        normalized_shape,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        params: layernorm_model.LayerNormParams | None = None,
        scale: str = "format",
    ):
        super().__init__()
        if scale not in _LN_SCALES:
            raise ValueError(
                f"LayerNorm scale must be one of {', '.join(_LN_SCALES)}, not {scale!r}"
            )
        self.scale = scale
        #: static policy: the prescale exponent k (None until calibrated)
        self.shift: int | None = None
        self._calibration_max: float | None = None
        self._affine = None  # (parameter versions, their codes): see _affine_codes
        shape = (
            (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        )
        if len(shape) != 1:
            raise ValueError(
                f"hwtorch.nn.LayerNorm normalises over the last axis only; "
                f"normalized_shape must be one int, not {normalized_shape!r}"
            )
        self.normalized_shape = shape
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        base = params if params is not None else layernorm_model.LayerNormParams()
        self.params = hardware_eps(base, eps)
        if elementwise_affine:
            self.weight = torch.nn.Parameter(torch.ones(shape))
            self.bias = torch.nn.Parameter(torch.zeros(shape)) if bias else None
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def calibrate(self, x) -> LayerNorm:
        """Static policy: set k from calibration inputs (``x`` may be given in several calls;
        k covers the largest magnitude seen so far). Returns ``self``."""
        top = float(np.abs(np.asarray(_numpy(x), dtype=np.float64)).max(initial=0.0))
        self._calibration_max = max(self._calibration_max or 0.0, top)
        self.shift = int(_prescale_shift(np.array(self._calibration_max), self.params.in_fmt))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.normalized_shape[0]:
            raise ValueError(
                f"LayerNorm over {self.normalized_shape[0]} channels got an input of "
                f"{x.shape[-1]} on the last axis"
            )
        if _CALIBRATING.active:
            self.calibrate(x)
        p = self.params
        gamma, beta = self._affine_codes()
        xf = _real(x)
        if self.scale == "format":
            codes = p.in_fmt.encode(xf)
        else:
            if self.scale == "static":
                if self.shift is None:
                    raise ValueError(
                        "LayerNorm with scale='static' is not calibrated; call .calibrate(x) or "
                        "hwtorch.nn.calibrate(model, batches) first"
                    )
                k = torch.full((1,), self.shift, dtype=torch.int64, device=x.device)
            else:
                k = _prescale_shift(xf.abs().amax(dim=-1, keepdim=True), p.in_fmt)
            codes = p.in_fmt.encode(xf.double() * _pow2(-k))
        codes = layernorm_model.emulate(p, codes, gamma, beta, checked=True)  # encode's codes
        return _decoded(p.out_fmt, codes, x.dtype)

    def _affine_codes(self):
        """gamma and beta as ``gamma_fmt`` / ``beta_fmt`` codes on the parameters' device (None
        where absent), encoded again only after a parameter changed (its storage or version)."""
        params = (self.weight, self.bias)
        key = tuple(None if t is None else (t.data_ptr(), t._version, t.device) for t in params)
        if self._affine is None or self._affine[0] != key:
            fmts = (self.params.gamma_fmt, self.params.beta_fmt)
            codes = tuple(
                None if t is None else f.encode(t.detach())
                for t, f in zip(params, fmts, strict=True)
            )
            self._affine = (key, codes)
        return self._affine[1]

    def extra_repr(self) -> str:
        scale = "" if self.scale == "format" else f", scale={self.scale}"
        return f"{self.normalized_shape}, eps={self.eps}{scale}, params={self.params.name}"


_LN_SCALES = ("format", "static", "dynamic")


def hardware_eps(
    params: layernorm_model.LayerNormParams, eps: float
) -> layernorm_model.LayerNormParams:
    """``params`` with ``eps`` and the guard bits the hardware needs to add it.

    The guard bits G are :func:`golden.layernorm.eps_guard_bits` (never fewer than
    ``params.eps_extra_bits``), so eps is added within 1/128 of its value where 32 guard bits
    allow. Below ``2**-(2 F + 32)`` (F: ``in_fmt``'s fractional bits), where even 32 guard bits
    round eps to 0, the hardware adds ``2**-(2 F + 32)``: the result then differs from the
    float LayerNorm with the smaller eps by a factor ``sqrt(var + eps') / sqrt(var + eps)``,
    i.e. by less than 2.3e-15 / (2 var) relatively at s8.8, and a constant row gives 0 where
    torch's eps = 0 gives NaN.

    >>> hardware_eps(layernorm_model.LayerNormParams(), 1e-12).eps_extra_bits
    30
    >>> hardware_eps(layernorm_model.LayerNormParams(), 0.0).eps == 2.0**-48
    True
    """
    eps = float(eps)
    if not (0.0 <= eps < float("inf")):
        raise ValueError(f"LayerNorm eps must be a finite number >= 0, not {eps!r}")
    floor = 2.0 ** -(2 * params.in_fmt.frac_bits + layernorm_model.MAX_GUARD_BITS)
    eps = max(eps, floor)
    g = layernorm_model.eps_guard_bits(eps, params.in_fmt, params.eps_extra_bits)
    return params.replace(eps=eps, eps_extra_bits=g)


_MAX_SHIFT = 16


def _prescale_shift(top, fmt: FixFormat):
    """Smallest k in -16 .. 16 with ``top * 2**-k <= fmt.max_value`` (0 where top is 0), for
    a NumPy array or a tensor of magnitudes (in its namespace and on its device).

    >>> int(_prescale_shift(np.array(100.0), FixFormat(8, 8)))  # 100 fits s8.8's 127.99
    0
    >>> int(_prescale_shift(np.array(300.0), FixFormat(8, 8)))
    2
    >>> int(_prescale_shift(torch.tensor(0.3), FixFormat(8, 8)))
    -8
    """
    xp = namespace(top)
    top = xp.astype(top, xp.float64) if not is_numpy(xp) else np.asarray(top, dtype=np.float64)
    ratio = xp.where(top > 0, top / fmt.max_value, 1.0)
    mant, exp = (np.frexp if is_numpy(xp) else torch.frexp)(ratio)  # ratio = mant * 2**exp
    k = xp.where(mant == 0.5, exp - 1, exp)  # ceil(log2(ratio)), mant in [0.5, 1)
    k = xp.astype(xp.where(top > 0, k, 0), xp.int64)
    return clip(xp, k, -_MAX_SHIFT, _MAX_SHIFT)


#: 2**j for j = -16 .. 16, exact in float64: the prescale factors.
_POW2 = 2.0 ** np.arange(-_MAX_SHIFT, _MAX_SHIFT + 1)


def _pow2(k):
    """2.0**k (float64, exact) for int64 k in -16 .. 16, on k's device."""
    return lookup(namespace(k), _POW2, k + _MAX_SHIFT)


class _Calibrating:
    active = False


_CALIBRATING = _Calibrating()


def calibrate(model: torch.nn.Module, batches) -> torch.nn.Module:
    """Run ``model`` on ``batches`` (an iterable of input tensors) in calibration mode.

    Every :class:`LayerNorm` with ``scale="static"`` records the largest magnitude it sees
    and sets its prescale from it (a :class:`MacLinear` is calibrated by its own
    :meth:`MacLinear.calibrate`). Returns ``model``.
    """
    _CALIBRATING.active = True
    try:
        with torch.no_grad():
            for xb in batches:
                model(xb)
    finally:
        _CALIBRATING.active = False
    return model


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
        if not x.dtype.is_floating_point or p.in_fmt.width > gelu_model.TABLE_MAX_WIDTH:
            return _through(lambda c: gelu_model.emulate(p, c), x, p.in_fmt, p.out_fmt)
        # emulate's result for every input code, decoded once, read at each value's code:
        # the same numbers as decoding emulate(encode(x)), in a third of the passes
        table = _decoded_table(p, np.float32 if x.dtype == torch.float32 else np.float64)
        y = lookup(namespace(x), table, p.in_fmt.encode_index(_real(x)))
        return y if y.dtype == x.dtype else y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"params={self.params.name}"


@functools.lru_cache(maxsize=16)
def _decoded_table(p: gelu_model.GeluParams, dtype) -> np.ndarray:
    """:func:`golden.gelu.code_table` decoded to reals of a NumPy ``dtype`` (each the float64
    value rounded once), read-only."""
    table = p.out_fmt.decode(gelu_model.code_table(p), checked=True).astype(dtype)
    table.setflags(write=False)
    return table


#: The MAC's default activation format, s4.4.
ACT_FMT = FixFormat(4, 4)


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
    act_scale : float, "row" or None
        Static activation scale, ``"row"`` for dynamic per row or None for dynamic per tensor
        (see the module docstring).
    """

    def __init__(
        self,
        codes,
        w_is_posit,
        weight_scale,
        bias=None,
        params: posit_mac.MacParams | None = None,
        act_scale: float | str | None = None,
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
        #: tensor copies of the constants above, per device (made by the first forward there)
        self._on_device: dict = {}

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
        act_scale: float | str | None = None,
    ) -> MacLinear:
        """Quantize a float ``nn.Linear`` with :mod:`hwtorch.quant` and wrap it.

        Parameters
        ----------
        linear : nn.Linear
            The float layer (a :class:`hwtorch.quant.QuantLinear` keeps the scale and mask it
            was trained with; ``mode`` is then its own and ``budget``/``importance`` unused).
        mode : str
            ``"mixed"`` (:func:`~hwtorch.quant.mixed_quantize`, MAC mode mixed),
            ``"posit4"`` (:func:`~hwtorch.quant.quantize_posit4`, MAC mode mixed with every
            weight a posit) or ``"fixp4"`` (:func:`~hwtorch.quant.quantize_fixp4`, MAC mode
            fixp).
        budget, importance
            For ``mixed``: see :func:`~hwtorch.quant.mixed_quantize`.
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
        self.act_scale = _max_abs_scale(_float64(x), self.params)
        return self

    def activation_codes(self, x) -> tuple[np.ndarray, float | np.ndarray]:
        """``act_fmt`` codes of an input and the activation scale they were taken with (a
        float, or an array ``[..., 1]`` of per-row scales for ``act_scale="row"``), in the
        input's library and on its device."""
        xf = _float64(x)
        if self.act_scale == "row":
            scale = _max_abs_scale(xf, self.params, axis=-1)
        elif self.act_scale is None:
            scale = _max_abs_scale(xf, self.params)
        else:
            scale = self.act_scale
        return self.params.act_fmt.encode(xf / scale), scale

    def _constants(self, like):
        """(codes, w_is_posit, weight_scale, bias) in ``like``'s library and on its device:
        the NumPy attributes themselves, or tensor copies made once per device."""
        if isinstance(like, np.ndarray):
            return self.codes, self.w_is_posit, self.weight_scale, self.bias
        key = str(like.device)
        if key not in self._on_device:
            self._on_device[key] = tuple(
                None if v is None else torch.from_numpy(np.array(v)).to(like.device)
                for v in (self.codes, self.w_is_posit, self.weight_scale, self.bias)
            )
        return self._on_device[key]

    def accumulate(self, a_codes):
        """Accumulator codes ``[..., out]`` of activation codes ``[..., in]`` (exact), in the
        codes' library and on their device."""
        p = self.params
        codes, mask, _, _ = self._constants(a_codes)
        return posit_mac.emulate_matmul(
            p, codes, a_codes, None if p.mode is posit_mac.MacMode.FIXP else mask
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"input has {x.shape[-1]} features, the layer {self.in_features}")
        a_codes, scale = self.activation_codes(x)
        acc = self.accumulate(a_codes)
        _, _, weight_scale, bias = self._constants(acc)
        y = ((acc.double() * 2.0**-self.params.acc_frac) * scale) * weight_scale
        if bias is not None:
            y = y + bias
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        scale = {None: "dynamic", "row": "dynamic per row"}.get(self.act_scale)
        scale = scale or f"{self.act_scale:.6g}"
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"posits={int(self.w_is_posit.sum())}, act_scale={scale}, params={self.params.name}"
        )


def _decoded(fmt: FixFormat, codes: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """An emulate's output codes as reals of ``dtype`` (each rounded once, as float64 then a
    cast would give; the codes are in ``fmt`` by the model's contract)."""
    if not dtype.is_floating_point:
        return fmt.decode(codes, checked=True).to(dtype)
    return fmt.decode(codes, dtype=dtype, checked=True)


def _real(x):
    """A tensor's values as a float tensor on its device, detached (float32 and float64 stay,
    other dtypes become float64: every value is exact in the float64 that encode() works in);
    anything else as a NumPy float64 array."""
    if not isinstance(x, torch.Tensor):
        return np.asarray(x, dtype=np.float64)
    x = x.detach()
    return x if x.dtype in (torch.float32, torch.float64) else x.double()


def _float64(x):
    """Real values as float64, a tensor (detached, on its device) or a NumPy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().double()
    return np.asarray(x, dtype=np.float64)


def _numpy(x):
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (
            x.numpy() if x.dtype == torch.bool or not x.is_floating_point() else x.double().numpy()
        )
    return x


def _check_scale(scale):
    if scale is None or scale == "row":
        return scale
    scale = float(scale)
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"act_scale must be a positive number, 'row' or None, not {scale!r}")
    return scale


def _max_abs_scale(x, p: posit_mac.MacParams, axis=None):
    """``max|x| / act_fmt.max_value`` over ``axis`` (None: the whole tensor, a float), 1
    where the maximum is 0; ``x`` a NumPy array or a tensor."""
    xp = namespace(x)
    if not xp.all(xp.isfinite(x)):
        raise ValueError("activations must be finite")
    if axis is None:
        top = float(xp.max(xp.abs(x))) if size(x) else 0.0
        return top / p.act_fmt.max_value if top > 0 else 1.0
    top = xp.max(xp.abs(x), axis=axis, keepdims=True)
    return xp.where(top > 0, top / p.act_fmt.max_value, 1.0)


# -- model patching ------------------------------------------------------------------------------

#: The value of an operator argument of :func:`patch_model` that puts an exact float module in
#: the operator's place (the same math as the original; for checking the patching itself).
EXACT = "exact"


@dataclass(frozen=True)
class WeightSpec:
    """How :func:`patch_model` quantizes ``nn.Linear`` weights onto the MAC.

    Parameters
    ----------
    mode : str
        ``"fixp4"``, ``"posit4"`` or ``"mixed"`` (see :meth:`MacLinear.from_linear`).
    budget : float
        ``mixed``: the per-layer fraction of weights that may be posits.
    es : int
        Posit exponent bits.
    act_fmt : FixFormat
        The MAC's activation format (default s4.4, 8 bits).
    act_scale : str or None
        Activation scale policy of each :class:`MacLinear`: ``"row"`` (default: per token) or
        None (per tensor).
    skip : tuple of str
        ``fnmatch`` patterns of qualified module names kept in float (default: the
        classifier ``head``, which quantized networks usually keep at higher precision).
    """

    mode: str = "mixed"
    budget: float = 0.25
    es: int = 1
    act_fmt: FixFormat = ACT_FMT
    act_scale: str | None = "row"
    skip: tuple[str, ...] = ("head",)

    def __post_init__(self):
        if self.mode not in ("fixp4", "posit4", "mixed"):
            raise ValueError(
                f"weights mode must be 'fixp4', 'posit4' or 'mixed', not {self.mode!r}"
            )
        if not 0.0 <= self.budget <= 1.0:
            raise ValueError(f"weights budget must be in [0, 1], not {self.budget!r}")
        if self.act_scale not in ("row", None):
            raise ValueError(f"weights act_scale must be 'row' or None, not {self.act_scale!r}")


@dataclass
class PatchSummary:
    """What :func:`patch_model` replaced: qualified module names per kind.

    Members
    -------
    replaced : dict of str to list of str
        ``gelu``, ``softmax``, ``layernorm``, ``linear``: the modules put in place.
    skipped : list of (str, str)
        Modules of a replaceable type left alone, with the reason.
    """

    replaced: dict[str, list[str]] = field(
        default_factory=lambda: {k: [] for k in ("gelu", "softmax", "layernorm", "linear")}
    )
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.replaced.items()}

    def __str__(self) -> str:
        text = ", ".join(f"{n} {k}" for k, n in self.counts().items() if n) or "nothing"
        if self.skipped:
            text += "; kept: " + ", ".join(f"{n} ({why})" for n, why in self.skipped)
        return "replaced " + text


def _op_module(kind: str, arg, original: torch.nn.Module | None, ln_scale: str = "format"):
    """The module to put in place of ``original`` for one operator argument of patch_model."""
    params_type = {
        "gelu": gelu_model.GeluParams,
        "softmax": softmax_model.SoftmaxParams,
        "layernorm": layernorm_model.LayerNormParams,
    }[kind]
    if arg == EXACT:
        if kind == "gelu":
            if not isinstance(original, torch.nn.GELU | GELU):  # Hugging Face: its own math
                return copy.deepcopy(original)
            return torch.nn.GELU(approximate=getattr(original, "approximate", "none"))
        if kind == "softmax":
            return torch.nn.Softmax(dim=-1)
        exact = torch.nn.LayerNorm(
            original.normalized_shape,
            eps=original.eps,
            elementwise_affine=original.elementwise_affine,
            bias=getattr(original, "bias", None) is not None,
        )
        exact.load_state_dict(original.state_dict())
        return exact
    if arg is True:
        params = params_type()
    elif isinstance(arg, params_type):
        params = arg
    else:
        raise TypeError(
            f"patch_model {kind}= takes None, True, {EXACT!r} or a {params_type.__name__}, "
            f"not {arg!r}"
        )
    if kind == "gelu":
        return GELU(approximate=_gelu_approximate(original), params=params)
    if kind == "softmax":
        return Softmax(dim=-1, params=params)
    ours = LayerNorm(
        original.normalized_shape,
        eps=original.eps,
        elementwise_affine=original.elementwise_affine,
        bias=getattr(original, "bias", None) is not None,
        params=params,
        scale=ln_scale,
    )
    ours.load_state_dict(original.state_dict())
    return ours


def patch_model(
    model: torch.nn.Module,
    *,
    gelu=None,
    softmax=None,
    layernorm=None,
    weights: WeightSpec | str | None = None,
    layernorm_scale: str = "format",
    importance: dict | None = None,
) -> PatchSummary:
    """Swap the hardware drop-ins into ``model`` in place; return what was replaced.

    Works on timm ViT / DeiT models, on Hugging Face ``transformers`` encoders of the BERT
    family (``BertModel`` and the models built like it: their GELU activation classes, every
    LayerNorm, the attention softmax) and on any model built from ``nn.GELU``,
    ``nn.LayerNorm`` and ``nn.Linear``.

    Parameters
    ----------
    gelu, softmax, layernorm
        None (leave the operator alone), True (the block at its default Params), a Params of
        that operator, or :data:`EXACT` (an exact float module in the operator's place: the
        same math as the original, for checking the patching).
    weights : WeightSpec, str or None
        Quantize every ``nn.Linear`` (but ``skip``) onto the MAC as a :class:`MacLinear`; a
        string is ``WeightSpec(mode=...)``. An ``nn.Linear`` that is a
        :class:`hwtorch.quant.QuantLinear` (after quantization-aware training) keeps its own
        scales and posit mask.
    layernorm_scale : str
        Scale policy of the :class:`LayerNorm` drop-ins (``"format"``, ``"static"``,
        ``"dynamic"``); ``"static"`` needs :func:`calibrate` afterwards.
    importance : dict, optional
        ``mixed`` weights: per-weight importance by qualified module name, as
        :func:`hwtorch.quant.importance_from_grad` returns (default: none, i.e. the assignment
        minimises the plain squared weight error).

    Notes
    -----
    timm's ``Attention`` computes ``attn.softmax(dim=-1)`` on a tensor, which cannot be
    swapped. Each ``Attention`` gets fused attention switched off and its class changed to
    :class:`VisibleSoftmaxAttention`, whose forward pass is timm's unfused path with the
    softmax taken from a ``softmax`` submodule. Parameters and state-dict keys are unchanged.

    A Hugging Face attention module that dispatches through transformers' attention-function
    registry (``ALL_ATTENTION_FUNCTIONS``, as every BERT-family self-attention does) gets a
    ``hw_softmax`` submodule (no parameters, so the state dict keeps its keys) and its
    config's ``_attn_implementation`` set to ``"hwgen"``: :func:`hardware_attention`,
    registered with transformers' ``AttentionInterface`` (and the boolean ``sdpa`` mask under
    the same name), computes eager attention with the softmax taken from ``hw_softmax``.
    Masked positions are left out of each row, as the hardware would see a row of the
    unmasked length; they get probability 0. Nothing in transformers is patched, and a
    module without ``hw_softmax`` that shares the config runs the same eager math with the
    exact softmax. GELU classes: ``GELUActivation`` (erf) and the tanh forms (``GELUTanh``,
    ``NewGELUActivation``, ``FastGELUActivation``, ``AccurateGELUActivation``) become the
    GELU block; ``QuickGELUActivation`` and ``ClippedGELUActivation`` are other functions and
    are kept, with the reason in the summary.
    """
    if isinstance(weights, str):
        weights = WeightSpec(mode=weights)
    if weights is not None and not isinstance(weights, WeightSpec):
        raise TypeError(f"weights must be a WeightSpec, a mode string or None, not {weights!r}")
    if layernorm_scale not in _LN_SCALES:
        raise ValueError(
            f"layernorm_scale must be one of {', '.join(_LN_SCALES)}, not {layernorm_scale!r}"
        )
    attention_types = _timm_attention_types()
    summary = PatchSummary()
    for name, module in list(model.named_modules()):
        hf_kind = _hf_attention_kind(module) if softmax is not None else None
        if hf_kind is not None:
            if hf_kind:
                _use_hw_attention(module)
                module.hw_softmax = _op_module("softmax", softmax, None)
                summary.replaced["softmax"].append(name)
            else:
                summary.skipped.append(
                    (name, f"{type(module).__name__} computes its softmax inline")
                )
        if softmax is not None and isinstance(module, attention_types):
            if type(module) not in (_timm_attention(), VisibleSoftmaxAttention):
                summary.skipped.append((name, f"{type(module).__name__} not supported"))
                continue
            module.__class__ = VisibleSoftmaxAttention
            module.fused_attn = False
            module.softmax = _op_module("softmax", softmax, None)
            summary.replaced["softmax"].append(name)
        if not name:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        new = None
        if gelu is not None and isinstance(module, _gelu_types()):
            why = _hf_gelu_kinds()[2].get(type(module).__name__)
            if why is not None:
                summary.skipped.append((name, why))
                continue
            new, kind = _op_module("gelu", gelu, module), "gelu"
        elif layernorm is not None and isinstance(module, torch.nn.LayerNorm | LayerNorm):
            if len(module.normalized_shape) != 1:
                summary.skipped.append((name, "normalises over more than one axis"))
                continue
            new = _op_module("layernorm", layernorm, module, layernorm_scale)
            kind = "layernorm"
        elif weights is not None and isinstance(module, torch.nn.Linear):
            if any(fnmatch.fnmatchcase(name, pat) for pat in weights.skip):
                summary.skipped.append((name, "kept in float"))
                continue
            imp = (importance or {}).get(name)
            new, kind = _mac_linear(module, weights, imp), "linear"
        if new is not None:
            setattr(parent, child, new)
            summary.replaced[kind].append(name)
    return summary


# -- Hugging Face transformers ------------------------------------------------------------------

#: transformers GELU classes computing the erf GELU, the tanh approximation of it, and GELU-like
#: functions the block does not compute (with the reason they are kept).
_HF_GELU_ERF = ("GELUActivation",)
_HF_GELU_TANH = ("GELUTanh", "NewGELUActivation", "FastGELUActivation", "AccurateGELUActivation")
_HF_GELU_OTHER = {
    "QuickGELUActivation": "QuickGELU is x sigmoid(1.702 x), not the GELU the block computes",
    "ClippedGELUActivation": "clipped GELU saturates at its own bounds; kept in float",
}


@functools.lru_cache(maxsize=1)
def _hf_gelu_kinds() -> tuple[tuple[type, ...], tuple[type, ...], dict[str, str]]:
    """(erf classes, tanh and kept classes, {kept class name: reason}) of the installed
    transformers (all empty without it)."""
    try:
        from transformers import activations
    except ImportError:  # transformers is optional
        return (), (), {}
    erf = tuple(getattr(activations, n) for n in _HF_GELU_ERF if hasattr(activations, n))
    tanh = tuple(getattr(activations, n) for n in _HF_GELU_TANH if hasattr(activations, n))
    other = tuple(getattr(activations, n) for n in _HF_GELU_OTHER if hasattr(activations, n))
    return erf, tanh + other, dict(_HF_GELU_OTHER)


def _gelu_types() -> tuple[type, ...]:
    erf, rest, _ = _hf_gelu_kinds()
    return (torch.nn.GELU, GELU, *erf, *rest)


def _gelu_approximate(original) -> str:
    if original is None or isinstance(original, torch.nn.GELU | GELU):
        return getattr(original, "approximate", "none")
    return "none" if isinstance(original, _hf_gelu_kinds()[0]) else "tanh"


@functools.cache
def _dispatches_through_registry(cls: type) -> bool:
    try:
        return "ALL_ATTENTION_FUNCTIONS" in inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return False


def _hf_attention_kind(module: torch.nn.Module) -> bool | None:
    """None: not a transformers attention module (or a wrapper around one); True: one whose
    forward pass dispatches through transformers' attention-function registry; False: one
    that computes its softmax some other way."""
    cls = type(module)
    if not cls.__module__.startswith("transformers.models.") or "Attention" not in cls.__name__:
        return None
    if not hasattr(module, "config"):
        return None
    if _dispatches_through_registry(cls):
        return True
    # wrappers (BertAttention holds BertSelfAttention): their child is the one patched
    if any(_hf_attention_kind(c) is not None for c in module.children()):
        return None
    return False


#: The name under which :func:`hardware_attention` is registered with transformers.
HF_ATTENTION = "hwgen"


def _use_hw_attention(module: torch.nn.Module) -> None:
    """Register :func:`hardware_attention` (once) and select it in ``module.config``."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if HF_ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(HF_ATTENTION, hardware_attention)
        AttentionMaskInterface.register(HF_ATTENTION, sdpa_mask)  # boolean, True = attend
    module.config._attn_implementation = HF_ATTENTION


def hardware_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **_):
    """Eager scaled dot-product attention with the softmax of ``module.hw_softmax`` (the
    exact softmax where the module has none), in transformers' attention-function signature:
    tensors ``[batch, heads, tokens, head_dim]`` in; the output ``[batch, tokens, heads,
    head_dim]`` and the probabilities out.

    ``attention_mask`` is boolean (True: attend) or additive (a float tensor whose masked
    entries are at most half the dtype's lowest value). Each row's masked positions are left
    out of the softmax, as the hardware would see only the row's unmasked elements, and get
    probability 0.
    """
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    keep = None
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            keep = attention_mask
        else:
            scores = scores + attention_mask
            keep = attention_mask > torch.finfo(attention_mask.dtype).min / 2
        keep = keep.expand(scores.shape)
    softmax = getattr(module, "hw_softmax", None)
    if softmax is None:
        softmax = torch.nn.Softmax(dim=-1)
    probs = _row_softmax(softmax, scores, keep)
    probs = torch.nn.functional.dropout(probs, p=dropout, training=module.training)
    out = torch.matmul(probs, value).transpose(1, 2).contiguous()
    return out, probs


def _row_softmax(softmax: torch.nn.Module, scores: torch.Tensor, keep) -> torch.Tensor:
    """``softmax`` (over the last axis) of every row's kept entries; 0 where not kept."""
    if keep is None or bool(keep.all()):
        return softmax(scores)
    n = scores.shape[-1]
    flat = scores.reshape(-1, n)
    mask = keep.reshape(-1, n)
    out = torch.zeros_like(flat)
    counts = mask.sum(dim=-1)
    for c in torch.unique(counts).tolist():
        if c == 0:
            continue  # a fully masked row attends to nothing
        rows = torch.nonzero(counts == c).squeeze(1)
        m = mask[rows]
        out[rows] = out[rows].masked_scatter(m, softmax(flat[rows][m].reshape(-1, c)))
    return out.reshape(scores.shape)


def _mac_linear(linear: torch.nn.Linear, spec: WeightSpec, importance=None) -> MacLinear:
    out = MacLinear.from_linear(
        linear,
        mode=spec.mode,
        budget=spec.budget,
        importance=importance,
        es=spec.es,
        act_fmt=spec.act_fmt,
    )
    out.act_scale = spec.act_scale
    return out


def _timm_attention():
    try:
        from timm.layers.attention import Attention
    except ImportError:  # timm is optional: without it no attention is patched
        return None
    return Attention


def _timm_attention_types() -> tuple[type, ...]:
    att = _timm_attention()
    return (att,) if att is not None else ()


def _make_visible_attention():
    base = _timm_attention()
    if base is None:
        return None

    class VisibleSoftmaxAttention(base):
        """timm ``Attention`` whose softmax is the ``softmax`` submodule (set by
        :func:`patch_model`): timm's unfused forward path with that one step swapped."""

        def forward(self, x, attn_mask=None, is_causal=False):
            from timm.layers.attention import maybe_add_mask, resolve_self_attn_mask

            b, n, _ = x.shape
            gate = self.gate(x).sigmoid() if getattr(self, "gate", None) is not None else None
            qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
            q, k = self.q_norm(q), self.k_norm(k)
            attn = (q * self.scale) @ k.transpose(-2, -1)
            attn = maybe_add_mask(attn, resolve_self_attn_mask(n, attn, attn_mask, is_causal))
            attn = self.attn_drop(self.softmax(attn))
            x = (attn @ v).transpose(1, 2).reshape(b, n, self.attn_dim)
            x = self.norm(x)
            if gate is not None:
                x = x * gate
            return self.proj_drop(self.proj(x))

    return VisibleSoftmaxAttention


VisibleSoftmaxAttention = _make_visible_attention()
