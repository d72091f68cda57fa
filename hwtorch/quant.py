"""Weight quantization for the mixed Posit4 / FixP4 MAC (Azizi et al., arXiv 2312.02210).

The paper keeps 4-bit posits (Posit4) for the weights a model is sensitive to and 4-bit fixed
point (FixP4) for the rest, picks which with a heuristic on importance and quantization error,
and fine-tunes with a gradient approximation for posits. It does not publish its formulas; this
module fixes them as follows.

Scales
------
Every quantizer is per output channel (row of a ``[out, in]`` weight): ``w ~= s[c] * q`` with
``q`` a FixP4 value (s1.3 by default: -1 .. 0.875 in steps of 1/8) or a posit<4, es> value.

* :func:`quantize_fixp4`: ``s = max|w| / |fmt.min_value|`` (``max|w|`` for s1.3), so the
  channel's largest magnitude lands on the end of the format's range; codes saturate to
  -8 .. 7, so a positive maximum becomes 0.875 s.
* :func:`quantize_posit4`: the posit grid is dense around 0 .. 1 and sparse beyond, so where it
  sits matters more than for a uniform grid. ``s`` is the MSE-optimal one among quarter-octave
  candidates ``max|w| / (maxpos * 2**(-j/4))`` from ``max|w| -> maxpos`` (nothing saturates)
  down to ``max|w| -> 1/2`` (the whole channel in the dense region). A fixed rule (the RMS
  or median of ``|w|`` at 1) would have to be tuned to the weights' distribution; the search
  adapts per channel for a few dozen roundings of the matrix.
* :func:`mixed_quantize`: the MAC adds posit and FixP products of one output channel in one
  accumulator, so both formats share the channel's scale. It is searched among
  ``max|w| * 2**(-j/4)``, j = 0 .. 16 (the FixP4 max-abs scale down four octaves: at smaller
  scales FixP4 resolves the bulk finely and the posits' 2, 4, 16 catch the outliers), jointly
  with the assignment (see there).

Rounding is each format's own (:meth:`FixFormat.encode`: nearest, ties to even, saturating;
:meth:`PositFormat.encode`: the posit standard's rounding, saturating to minpos / maxpos, so a
nonzero weight never becomes 0 as a posit).

Findings (:func:`es_study`, :func:`weight_error_study`, digits MLP, seeds 0-9)
-----------------------------------------------------------------------------
Relative squared weight error, mean over seeds: FixP4 0.0094; Posit4 alone es=0 0.0135,
es=1 0.0291, es=2 0.0975; mixed at budget 0.25 es=0 0.0071, es=1 0.0056, es=2 0.0066 (each
ordering holds for every seed). Alone, es=0's finer fractions win; mixed with FixP4 at a
shared scale, es=1 wins because its values complement the FixP4 grid (1/16 below its step,
2, 4 and 16 beyond its range) instead of duplicating it, which is what the mixed MAC needs.
The assignment uses about 10 % posits with es=1 whatever larger budget it is given: other
weights are better in FixP4. Test accuracy (599 digits) moves by a few samples between most
choices: float 96.4 %, FixP4 95.7 %, Posit4 es=0/1/2 94.9/93.6/83.2 %, mixed es=1 95.8 %.

Patterns
--------
Codes are the raw 4-bit patterns 0 .. 15 that :func:`golden.posit_mac.emulate` takes: FixP4 as
two's complement bits (``fmt.to_bits``), posits as posit patterns.
"""

from __future__ import annotations

import copy
import fnmatch
import math
from typing import NamedTuple

import numpy as np
import torch

from golden.formats import FixFormat, PositFormat

__all__ = [
    "FIXP4",
    "Quantized",
    "MixedQuantized",
    "quantize_fixp4",
    "quantize_posit4",
    "mixed_quantize",
    "importance_from_grad",
    "posit_grad_factor",
    "FixP4STE",
    "Posit4STE",
    "QuantLinear",
    "quantize_model",
    "digits_mlp",
    "es_study",
    "weight_error_study",
    "to_qat",
]

#: The default FixP4 format, s1.3 (that of :class:`golden.posit_mac.MacParams`).
FIXP4 = FixFormat(1, 3)

# mixed_quantize's scale candidates: max|w| * 2**(-j / _STEPS), j = 0 .. _OCTAVES * _STEPS
_STEPS = 4
_OCTAVES = 4


class Quantized(NamedTuple):
    """A single-format quantized weight matrix.

    Members
    -------
    codes : int64, shape [out, in]
        4-bit patterns 0 .. 15.
    scale : float, shape [out, 1]
        Per-output-channel scale.
    dequantized : float, shape [out, in]
        ``scale * value(codes)``.
    """

    codes: torch.Tensor | np.ndarray
    scale: torch.Tensor | np.ndarray
    dequantized: torch.Tensor | np.ndarray


class MixedQuantized(NamedTuple):
    """A mixed Posit4 / FixP4 weight matrix with one scale per output channel.

    Members
    -------
    codes : int64, shape [out, in]
        4-bit patterns 0 .. 15, read as posit where ``w_is_posit`` and as FixP4 elsewhere.
    w_is_posit : bool, shape [out, in]
        Per-weight format.
    scale : float, shape [out, 1]
        Shared by both formats of a channel.
    dequantized : float, shape [out, in]
        ``scale * value(codes)``.
    """

    codes: torch.Tensor | np.ndarray
    w_is_posit: torch.Tensor | np.ndarray
    scale: torch.Tensor | np.ndarray
    dequantized: torch.Tensor | np.ndarray


# -- helpers -------------------------------------------------------------------------------------


def _matrix(W, what: str = "W") -> np.ndarray:
    """``W`` as a float64 [out, in] array (a copy, detached from autograd)."""
    if isinstance(W, torch.Tensor):
        arr = W.detach().to("cpu", torch.float64).numpy()
    else:
        arr = np.asarray(W, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D [out, in] weight matrix, not shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what} has non-finite entries")
    return arr


def _like(arr: np.ndarray, ref, dtype=None):
    """``arr`` as a tensor like ``ref`` (its dtype unless ``dtype``), or as NumPy if ``ref`` is."""
    if isinstance(ref, torch.Tensor):
        out = torch.from_numpy(np.ascontiguousarray(arr))
        return out.to(device=ref.device, dtype=dtype if dtype is not None else ref.dtype)
    if dtype is not None:
        return arr
    return arr.astype(np.asarray(ref).dtype if np.asarray(ref).dtype.kind == "f" else np.float64)


def _check_fixp4(fmt: FixFormat) -> FixFormat:
    if not isinstance(fmt, FixFormat) or not fmt.signed or fmt.width != 4:
        raise ValueError(f"FixP4 must be a signed 4-bit FixFormat, not {fmt!r}")
    return fmt


def _max_abs(w: np.ndarray) -> np.ndarray:
    """Per-row max |w| as [out, 1]; all-zero rows get 1 (any scale quantizes them exactly)."""
    m = np.abs(w).max(axis=1, keepdims=True)
    return np.where(m > 0, m, 1.0)


def _fixp_round(x: np.ndarray, fmt: FixFormat) -> tuple[np.ndarray, np.ndarray]:
    codes = fmt.encode(x)
    return fmt.to_bits(codes), fmt.decode(codes)


def _posit_round(x: np.ndarray, pf: PositFormat) -> tuple[np.ndarray, np.ndarray]:
    patterns = pf.encode(x)
    return patterns, pf.decode(patterns)


# -- single-format quantizers --------------------------------------------------------------------


def quantize_fixp4(W, fmt: FixFormat = FIXP4) -> Quantized:
    """Per-output-channel FixP4 quantization with the max-abs scale.

    ``s = max|w| / |fmt.min_value|`` per row, codes ``fmt.encode(w / s)`` (nearest, ties to
    even, saturating to -8 .. 7), so the error is at most half a step (``s / 16`` for s1.3)
    except for a positive maximum, which saturates to ``0.875 s``.

    Parameters
    ----------
    W : tensor or array, shape [out, in]
        Float weights.
    fmt : FixFormat
        A signed 4-bit format (default s1.3).

    Returns
    -------
    Quantized
        ``(codes, scale, dequantized)``: tensors if ``W`` is a tensor, else arrays.

    Examples
    --------
    >>> q = quantize_fixp4(np.array([[0.5, -1.0, 0.26, 0.0]]))
    >>> q.codes.tolist(), q.scale.tolist(), q.dequantized.tolist()
    ([[4, 8, 2, 0]], [[1.0]], [[0.5, -1.0, 0.25, 0.0]])
    """
    fmt = _check_fixp4(fmt)
    w = _matrix(W)
    scale = _max_abs(w) / abs(fmt.min_value)
    patterns, values = _fixp_round(w / scale, fmt)
    return Quantized(_like(patterns, W, torch.int64), _like(scale, W), _like(values * scale, W))


def _posit_ratios(pf: PositFormat) -> np.ndarray:
    """``max|w| / s`` candidates of :func:`quantize_posit4`: maxpos down to 1/2, quarter octaves."""
    octaves = int(round(math.log2(pf.maxpos))) + 1
    return pf.maxpos * 2.0 ** (-np.arange(octaves * _STEPS + 1) / _STEPS)


def quantize_posit4(W, es: int = 1) -> Quantized:
    """Per-output-channel posit<4, es> quantization with a per-channel MSE-optimal scale.

    For each row the scale ``s = max|w| / r`` is the one with the least squared error among
    ``r = maxpos * 2**(-j/4)``, j = 0, 1, ... down to ``r = 1/2`` (ties: the largest ``r``).
    ``r = maxpos`` is the largest scale at which nothing saturates; smaller ones trade the
    largest weights' accuracy for the bulk's. Codes are ``PositFormat(4, es).encode(w / s)``.

    Parameters
    ----------
    W : tensor or array, shape [out, in]
        Float weights.
    es : int
        Posit exponent bits (0 to 2 are what the MAC supports; 0 to 4 work here).

    Returns
    -------
    Quantized
        ``(codes, scale, dequantized)``: tensors if ``W`` is a tensor, else arrays.

    Examples
    --------
    >>> q = quantize_posit4(np.array([[1.0, 0.5, -0.25, 0.0]]))
    >>> q.dequantized.tolist()   # a power-of-two row fits the es=1 grid exactly
    [[1.0, 0.5, -0.25, 0.0]]
    """
    pf = PositFormat(4, es)
    w = _matrix(W)
    top = _max_abs(w)
    ratios = _posit_ratios(pf)
    errors = np.empty((len(ratios), w.shape[0]))
    for j, r in enumerate(ratios):
        s = top / r
        errors[j] = ((_posit_round(w / s, pf)[1] * s - w) ** 2).sum(axis=1)
    best = errors.argmin(axis=0)  # first minimum: the largest ratio among ties
    scale = top / ratios[best][:, None]
    patterns, values = _posit_round(w / scale, pf)
    return Quantized(_like(patterns, W, torch.int64), _like(scale, W), _like(values * scale, W))


# -- mixed assignment ----------------------------------------------------------------------------


def mixed_quantize(
    W,
    budget: float,
    importance=None,
    es: int = 1,
    fmt: FixFormat = FIXP4,
    *,
    search_scale: bool = True,
    max_iter: int = 20,
) -> MixedQuantized:
    """Assign Posit4 to at most ``budget`` of a layer's weights, FixP4 to the rest.

    The objective is the importance-weighted squared error ``sum(I * (s q - w)**2)``. At a
    channel scale ``s`` each weight has a FixP4 error ``e_f`` and a Posit4 error ``e_p``; its
    score is ``I * (e_f**2 - e_p**2)``, what making it a posit saves. ``I`` is 1 by default, or
    a per-weight importance such as the Fisher diagonal from :func:`importance_from_grad`
    (then the objective is the second-order estimate of the loss increase,
    ``1/2 sum F dw**2``).

    Granularity: the budget is per layer (per call): the ``floor(budget * W.numel())`` best
    scores of the whole matrix, across channels, become posits; scores <= 0 never do, so fewer
    posits are used where they would not help. Per layer rather than across the model because
    each layer runs on its own MAC array, whose share of posit weights then is what the
    budget says, and because raw scores of different layers are not comparable unless the
    importance is calibrated; per layer rather than per channel because channels differ in
    how much posits help them.

    Scales (with ``search_scale``): per channel among ``max|w| * 2**(-j/4)``, j = 0 .. 16, by
    coordinate descent on the objective: start from each channel's best FixP4-only scale
    among the candidates; then alternately (a) assign the posits by score at the current
    scales (optimal for fixed scales) and (b) give each channel the candidate scale that
    minimizes its error with at most as many posits as (a) gave it (keeping the current
    scale on ties), until nothing changes. Each step never increases the objective, so the
    result is never worse than FixP4 alone at its best candidate scale, which is never worse
    than :func:`quantize_fixp4` (j = 0 is its scale). Memory: 17 float64 copies of ``W``.
    Without ``search_scale`` every channel keeps the FixP4 max-abs scale and only (a) runs.

    Parameters
    ----------
    W : tensor or array, shape [out, in]
        Float weights.
    budget : float
        Fraction of the layer's weights that may be posits, 0 to 1.
    importance : tensor or array, shape [out, in], optional
        Non-negative per-weight importance (default all ones).
    es : int
        Posit exponent bits.
    fmt : FixFormat
        The FixP4 format (default s1.3).
    search_scale : bool
        Search the scales (default) or keep ``max|w| / |fmt.min_value|``.
    max_iter : int
        Cap on descent rounds (it usually stops after two or three).

    Returns
    -------
    MixedQuantized
        ``(codes, w_is_posit, scale, dequantized)``: tensors if ``W`` is a tensor.

    Examples
    --------
    >>> w = np.array([[1.0, 0.06, 0.3, -0.5]])
    >>> q = mixed_quantize(w, budget=0.5, search_scale=False)
    >>> q.w_is_posit.tolist()   # FixP4 saturates 1.0 to 0.875 and rounds 0.06 to 0
    [[True, True, False, False]]
    >>> q.dequantized.tolist()
    [[1.0, 0.0625, 0.25, -0.5]]
    """
    fmt = _check_fixp4(fmt)
    pf = PositFormat(4, es)
    w = _matrix(W)
    if not 0.0 <= float(budget) <= 1.0:
        raise ValueError(f"budget must be a fraction 0 .. 1, not {budget!r}")
    if importance is None:
        imp = np.ones_like(w)
    else:
        imp = _matrix(importance, "importance")
        if imp.shape != w.shape:
            raise ValueError(f"importance {imp.shape} must have the weights' shape {w.shape}")
        if (imp < 0).any():
            raise ValueError("importance must be non-negative")
    n_posit = int(math.floor(float(budget) * w.size + 1e-9))
    top = _max_abs(w) / abs(fmt.min_value)
    n_cand = _OCTAVES * _STEPS + 1 if search_scale else 1
    cand = top * 2.0 ** (-np.arange(n_cand) / _STEPS)  # [out, n_cand]

    def errors(scale):  # weighted squared errors of both formats at per-row scales [out, 1]
        e_f = imp * (_fixp_round(w / scale, fmt)[1] * scale - w) ** 2
        e_p = imp * (_posit_round(w / scale, pf)[1] * scale - w) ** 2
        return e_f, e_p

    # channel error with at most k posits, per candidate: fixp_total - (best k positive gains)
    fixp_total = np.empty((n_cand, w.shape[0]))
    gains_cum = np.empty((n_cand, w.shape[0], w.shape[1] + 1))
    for j in range(n_cand):
        e_f, e_p = errors(cand[:, j : j + 1])
        fixp_total[j] = e_f.sum(axis=1)
        g = -np.sort(-np.maximum(e_f - e_p, 0.0), axis=1)
        gains_cum[j, :, 0] = 0.0
        np.cumsum(g, axis=1, out=gains_cum[j, :, 1:])
    rows = np.arange(w.shape[0])

    def assign(j_of_row):
        scale = cand[rows, j_of_row][:, None]
        e_f, e_p = errors(scale)
        score = (e_f - e_p).ravel()
        order = np.argsort(-score, kind="stable")[:n_posit]
        chosen = order[score[order] > 0]
        mask = np.zeros(w.size, dtype=bool)
        mask[chosen] = True
        return mask.reshape(w.shape)

    current = fixp_total.argmin(axis=0)  # best FixP4-only scale per channel
    mask = assign(current)
    for _ in range(max_iter if search_scale else 0):
        k = mask.sum(axis=1)
        err = fixp_total - gains_cum[:, rows, k]  # [n_cand, out]
        best = err.argmin(axis=0)
        keep = err[current, rows] <= err[best, rows]
        new = np.where(keep, current, best)
        if np.array_equal(new, current):
            break
        current = new
        mask = assign(current)

    scale = cand[rows, current][:, None]
    f_bits, f_val = _fixp_round(w / scale, fmt)
    p_bits, p_val = _posit_round(w / scale, pf)
    codes = np.where(mask, p_bits, f_bits)
    values = np.where(mask, p_val, f_val)
    return MixedQuantized(
        _like(codes, W, torch.int64),
        _like(mask, W, torch.bool),
        _like(scale, W),
        _like(values * scale, W),
    )


def _linear_weights(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {
        name: mod.weight for name, mod in model.named_modules() if isinstance(mod, torch.nn.Linear)
    }


def importance_from_grad(model: torch.nn.Module, loss_fn, data, kind: str = "fisher") -> dict:
    """Per-weight importance of every ``nn.Linear`` weight from gradients on calibration data.

    Parameters
    ----------
    model : nn.Module
        Evaluated as it is (call ``model.eval()`` first if it has dropout or batch norm).
    loss_fn : callable
        ``loss_fn(model(x), y)`` -> scalar loss (a mean over the batch).
    data : (x, y) or iterable of (x, y)
        Calibration batches.
    kind : str
        ``"fisher"`` (default): the mean over batches of the squared batch gradient, an
        empirical Fisher diagonal (the usual per-sample one with batches of one); with it the
        score of :func:`mixed_quantize` is the second-order estimate of the loss change,
        which is what matters at a trained minimum where the gradient itself is near zero.
        ``"taylor"``: ``|w * g|`` with ``g`` the mean gradient, the first-order saliency.

    Returns
    -------
    dict
        Module name -> float tensor shaped like its weight. ``.grad`` fields are untouched.
    """
    if kind not in ("fisher", "taylor"):
        raise ValueError(f"kind must be 'fisher' or 'taylor', not {kind!r}")
    weights = _linear_weights(model)
    if not weights:
        raise ValueError("the model has no nn.Linear layers")
    if isinstance(data, tuple | list) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        data = [data]
    names = list(weights)
    params = [weights[n] for n in names]
    acc = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    batches = 0
    for x, y in data:
        grads = torch.autograd.grad(loss_fn(model(x), y), params, allow_unused=True)
        for a, g in zip(acc, grads, strict=True):
            if g is not None:
                a += g.detach().double() ** 2 if kind == "fisher" else g.detach().double()
        batches += 1
    if batches == 0:
        raise ValueError("no calibration batches")
    out = {}
    for name, p, a in zip(names, params, acc, strict=True):
        a = a / batches
        value = a if kind == "fisher" else (p.detach().double() * a).abs()
        out[name] = value.to(p.dtype)
    return out


# -- QAT -----------------------------------------------------------------------------------------


def _posit_boundaries(pf: PositFormat) -> tuple[np.ndarray, np.ndarray]:
    """Positive posit values and the rounding boundaries between neighbours.

    The boundary between two neighbours is the (n+1)-bit posit whose pattern lies between
    theirs (the standard's rounding), i.e. the odd (n+1)-bit patterns.
    """
    values = pf.decode(np.arange(1, pf.nar))
    wider = PositFormat(pf.n + 1, pf.es)
    bounds = wider.decode(np.arange(3, 2 * pf.nar - 1, 2))
    return values, bounds


def posit_grad_factor(x, es: int = 1, rule: str = "density") -> np.ndarray:
    """The derivative the posit fake quantizer passes back, at ``x = w / s``.

    ``rule="ste"``: 1 for ``|x| <= maxpos``, 0 beyond (where the quantizer saturates).

    ``rule="density"`` (the default): 0 beyond maxpos as well; inside, the straight-through
    gradient scaled by the width of the posit rounding interval that ``x`` falls in, relative
    to that of 1, clamped to [1/4, 4]::

        factor(x) = clip(width(x) / width(1), 1/4, 4)

    The interval of a posit value is the set of reals that round to it (the lowest is
    ``(0, b_1]``, as posits do not round to 0; the highest is clipped at maxpos). For es=1 the
    factors of the values 1/16, 1/4, 1/2, 1, 2, 4, 16 are 1/4, 1/3, 1/2, 1, 2, 4, 4. Why: a
    weight moves to another posit only once it crosses its interval, so an update in units of
    the local step gives every weight the same chance to move, as a uniform grid's STE does;
    near zero, where posits are dense, small weights stop flickering between neighbours, and
    sparse outliers can still move. (With Adam, which divides out a per-weight gradient scale,
    the factor matters only where a weight changes interval; with SGD it matters throughout.)

    Examples
    --------
    >>> posit_grad_factor([0.05, 0.3, 1.0, 2.5, 5.0, 16.0, 17.0]).tolist()
    [0.25, 0.3333333333333333, 1.0, 2.0, 4.0, 4.0, 0.0]
    """
    pf = PositFormat(4, es)
    x = np.abs(np.asarray(x, dtype=np.float64))
    inside = x <= pf.maxpos
    if rule == "ste":
        return inside.astype(np.float64)
    if rule != "density":
        raise ValueError(f"rule must be 'density' or 'ste', not {rule!r}")
    values, bounds = _posit_boundaries(pf)
    edges = np.concatenate([[0.0], bounds, [pf.maxpos]])
    width = np.diff(edges)  # width[i]: interval of values[i]
    idx = np.clip(pf.encode(x), 1, pf.nar - 1) - 1  # x = 0 uses minpos's interval
    ref = width[int(np.searchsorted(values, 1.0))]
    factor = np.clip(width[idx] / ref, 0.25, 4.0)
    return np.where(inside, factor, 0.0)


class Posit4STE(torch.autograd.Function):
    """Fake posit<4, es> quantization with the gradient of :func:`posit_grad_factor`.

    ``Posit4STE.apply(w, scale, es, rule)``: forward ``scale * posit(w / scale)`` (the
    standard's rounding, saturating); backward ``grad * posit_grad_factor(w / scale, es,
    rule)`` for ``w`` and nothing for the (static) scale.
    """

    @staticmethod
    def forward(ctx, w, scale, es=1, rule="density"):
        s = scale.detach().to(torch.float64).cpu().numpy()
        x = w.detach().to("cpu", torch.float64).numpy() / s
        values = _posit_round(x, PositFormat(4, es))[1] * s
        factor = posit_grad_factor(x, es, rule)
        ctx.save_for_backward(torch.from_numpy(factor).to(device=w.device, dtype=w.dtype))
        return torch.from_numpy(values).to(device=w.device, dtype=w.dtype)

    @staticmethod
    def backward(ctx, grad):
        (factor,) = ctx.saved_tensors
        return grad * factor, None, None, None


class FixP4STE(torch.autograd.Function):
    """Fake FixP4 quantization with the clipped straight-through estimator.

    ``FixP4STE.apply(w, scale, fmt)``: forward ``scale * fmt.decode(fmt.encode(w / scale))``;
    backward passes the gradient where ``fmt.min_value <= w / scale <= fmt.max_value`` and 0
    outside (where the codes saturate).
    """

    @staticmethod
    def forward(ctx, w, scale, fmt=FIXP4):
        s = scale.detach().to(torch.float64).cpu().numpy()
        x = w.detach().to("cpu", torch.float64).numpy() / s
        values = _fixp_round(x, fmt)[1] * s
        inside = (x >= fmt.min_value) & (x <= fmt.max_value)
        ctx.save_for_backward(torch.from_numpy(inside).to(w.device))
        return torch.from_numpy(values).to(device=w.device, dtype=w.dtype)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside.to(grad.dtype), None, None


_MODES = ("fixp4", "posit4", "mixed")


class QuantLinear(torch.nn.Linear):
    """``nn.Linear`` whose weight is fake-quantized in every forward pass, for QAT.

    The per-channel scale (and, in ``mixed`` mode, the posit mask) are buffers fixed when the
    layer is built or :meth:`requantize` is called, like the hardware's scale registers; the
    float weight is what the optimizer updates, and the forward pass uses
    :class:`FixP4STE` / :class:`Posit4STE` of it. Activations stay in float.

    Parameters
    ----------
    in_features, out_features, bias, device, dtype
        As for ``nn.Linear``.
    mode : str
        ``"fixp4"``, ``"posit4"`` or ``"mixed"``.
    es : int
        Posit exponent bits.
    budget : float
        ``mixed``: fraction of posit weights (see :func:`mixed_quantize`).
    importance : tensor, optional
        ``mixed``: per-weight importance for the assignment.
    grad : str
        Posit gradient rule, ``"density"`` or ``"ste"`` (see :func:`posit_grad_factor`).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device=None,
        dtype=None,
        *,
        mode: str = "mixed",
        es: int = 1,
        budget: float = 0.25,
        importance=None,
        grad: str = "density",
        _defer: bool = False,
    ):
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {', '.join(_MODES)}, not {mode!r}")
        if grad not in ("density", "ste"):
            raise ValueError(f"grad must be 'density' or 'ste', not {grad!r}")
        super().__init__(in_features, out_features, bias, device, dtype)
        self.mode, self.es, self.budget, self.grad = mode, es, budget, grad
        self.register_buffer("w_scale", torch.ones(out_features, 1, device=device, dtype=dtype))
        self.register_buffer(
            "w_is_posit", torch.zeros(out_features, in_features, device=device, dtype=torch.bool)
        )
        if not _defer:
            self.requantize(importance)

    @classmethod
    def from_linear(
        cls,
        linear: torch.nn.Linear,
        mode: str = "mixed",
        *,
        es: int = 1,
        budget: float = 0.25,
        importance=None,
        grad: str = "density",
    ) -> QuantLinear:
        """A QuantLinear with a copy of ``linear``'s parameters, quantized from its weight."""
        w = linear.weight
        q = cls(
            linear.in_features,
            linear.out_features,
            linear.bias is not None,
            w.device,
            w.dtype,
            mode=mode,
            es=es,
            budget=budget,
            grad=grad,
            _defer=True,
        )
        with torch.no_grad():
            q.weight.copy_(w)
            if linear.bias is not None:
                q.bias.copy_(linear.bias)
        q.requantize(importance)
        return q

    @torch.no_grad()
    def requantize(self, importance=None) -> None:
        """Fix the scale (and the mask) from the current float weight."""
        w = self.weight
        if self.mode == "fixp4":
            q = quantize_fixp4(w)
            mask = torch.zeros_like(self.w_is_posit)
        elif self.mode == "posit4":
            q = quantize_posit4(w, self.es)
            mask = torch.ones_like(self.w_is_posit)
        else:
            q = mixed_quantize(w, self.budget, importance, self.es)
            mask = q.w_is_posit
        self.w_scale.copy_(q.scale)
        self.w_is_posit.copy_(mask)

    def quantized_weight(self) -> torch.Tensor:
        """The fake-quantized weight (differentiable w.r.t. ``weight``)."""
        s = self.w_scale
        if self.mode == "fixp4":
            return FixP4STE.apply(self.weight, s, FIXP4)
        posit = Posit4STE.apply(self.weight, s, self.es, self.grad)
        if self.mode == "posit4":
            return posit
        return torch.where(self.w_is_posit, posit, FixP4STE.apply(self.weight, s, FIXP4))

    def export(self) -> MixedQuantized:
        """Codes, mask, scale and dequantized weight at the fixed scale, for the MAC."""
        w = _matrix(self.weight)
        s = self.w_scale.detach().to("cpu", torch.float64).numpy()
        mask = self.w_is_posit.cpu().numpy()
        f_bits, f_val = _fixp_round(w / s, FIXP4)
        p_bits, p_val = _posit_round(w / s, PositFormat(4, self.es))
        ref = self.weight
        return MixedQuantized(
            _like(np.where(mask, p_bits, f_bits), ref, torch.int64),
            _like(mask, ref, torch.bool),
            _like(s, ref),
            _like(np.where(mask, p_val, f_val) * s, ref),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(x, self.quantized_weight(), self.bias)

    def extra_repr(self) -> str:
        extra = f", budget={self.budget}" if self.mode == "mixed" else ""
        return f"{super().extra_repr()}, mode={self.mode}, es={self.es}{extra}"


def quantize_model(
    model: torch.nn.Module,
    mode: str,
    *,
    es: int = 1,
    budget: float = 0.25,
    importance: dict | None = None,
) -> torch.nn.Module:
    """A deep copy of ``model`` with every ``nn.Linear`` weight replaced by its dequantized value.

    ``mode`` is ``"fixp4"``, ``"posit4"`` or ``"mixed"`` (per layer, ``budget`` and the
    layer's entry of ``importance``, a dict as :func:`importance_from_grad` returns).
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(_MODES)}, not {mode!r}")
    out = copy.deepcopy(model)
    importance = importance or {}
    with torch.no_grad():
        for name, weight in _linear_weights(out).items():
            if mode == "fixp4":
                q = quantize_fixp4(weight)
            elif mode == "posit4":
                q = quantize_posit4(weight, es)
            else:
                q = mixed_quantize(weight, budget, importance.get(name), es)
            weight.copy_(q.dequantized)
    return out


def to_qat(
    model: torch.nn.Module, mode: str = "mixed", *, skip: tuple[str, ...] = (), **kwargs
) -> torch.nn.Module:
    """A deep copy of ``model`` with every ``nn.Linear`` replaced by a :class:`QuantLinear`.

    Keywords go to :meth:`QuantLinear.from_linear`; ``importance`` may be a dict by module
    name, as :func:`importance_from_grad` returns. ``skip``: ``fnmatch`` patterns of module
    names kept as they are (e.g. ``("head",)``).
    """
    importance = kwargs.pop("importance", None) or {}
    out = copy.deepcopy(model)
    names = [
        n
        for n, m in out.named_modules()
        if type(m) is torch.nn.Linear and not any(fnmatch.fnmatchcase(n, p) for p in skip)
    ]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = out.get_submodule(parent_name)
        linear = getattr(parent, child)
        q = QuantLinear.from_linear(linear, mode, importance=importance.get(name), **kwargs)
        setattr(parent, child, q)
    return out


# -- the es study --------------------------------------------------------------------------------


def digits_mlp(seed: int = 0, hidden: int = 32):
    """A small MLP trained in float on scikit-learn's digits (shipped with it: no download).

    Deterministic for a seed: a stratified 1/3 test split, inputs scaled to [0, 1], a
    64-``hidden``-``hidden``-10 ReLU MLP, 300 full-batch Adam steps (lr 0.01) on the
    remaining 2/3. Runs in about a second on one CPU core.

    Returns
    -------
    model, (x_train, y_train), (x_test, y_test)
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x / 16.0, y, test_size=1 / 3, random_state=seed, stratify=y
    )
    tensors = [torch.tensor(a, dtype=torch.float32) for a in (x_tr, x_te)]
    labels = [torch.tensor(a, dtype=torch.int64) for a in (y_tr, y_te)]
    gen = torch.Generator().manual_seed(seed)
    layers = [
        torch.nn.Linear(64, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 10),
    ]
    model = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for p in model.parameters():  # torch's default init, from a private generator
            bound = 1.0 / math.sqrt(p.shape[-1] if p.ndim == 2 else len(p))
            p.copy_(torch.rand(p.shape, generator=gen) * 2 * bound - bound)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(300):
        opt.zero_grad()
        loss_fn(model(tensors[0]), labels[0]).backward()
        opt.step()
    model.eval()
    return model, (tensors[0], labels[0]), (tensors[1], labels[1])


def _accuracy(model, data) -> float:
    x, y = data
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).double().mean())


def es_study(seed: int = 0, hidden: int = 32) -> dict[str, float]:
    """Test accuracy of a digits MLP with its Linear weights quantized in each way.

    Trains :func:`digits_mlp` and evaluates on its held-out third: ``"float"``; ``"fixp4"``
    (:func:`quantize_fixp4`); ``"posit4_es0"`` .. ``"posit4_es2"`` (:func:`quantize_posit4`);
    ``"mixed_<budget>"`` for budgets 0, 0.1, 0.25, 0.5 (:func:`mixed_quantize`, es=1, unit
    importance); ``"mixed_fisher_<budget>"`` for 0.1, 0.25, 0.5 (Fisher importance from the
    training set, one sample per batch, :func:`importance_from_grad`); ``"mixed_es0_0.25"``
    and ``"mixed_es2_0.25"``. Biases stay float.
    """
    model, train, test = digits_mlp(seed, hidden)
    out = {"float": _accuracy(model, test)}
    out["fixp4"] = _accuracy(quantize_model(model, "fixp4"), test)
    for es in (0, 1, 2):
        out[f"posit4_es{es}"] = _accuracy(quantize_model(model, "posit4", es=es), test)
    for budget in (0.0, 0.1, 0.25, 0.5):
        q = quantize_model(model, "mixed", budget=budget)
        out[f"mixed_{budget}"] = _accuracy(q, test)
    x, y = train
    samples = [(x[i : i + 1], y[i : i + 1]) for i in range(len(y))]
    fisher = importance_from_grad(model, torch.nn.CrossEntropyLoss(), samples)
    for budget in (0.1, 0.25, 0.5):
        q = quantize_model(model, "mixed", budget=budget, importance=fisher)
        out[f"mixed_fisher_{budget}"] = _accuracy(q, test)
    for es in (0, 2):
        out[f"mixed_es{es}_0.25"] = _accuracy(quantize_model(model, "mixed", es=es), test)
    return out


def weight_error_study(seed: int = 0, hidden: int = 32) -> dict[str, float]:
    """Relative squared weight error of the same quantizers on the same trained MLP.

    ``sum over layers of |Q(W) - W|**2 / sum of |W|**2`` for ``"fixp4"``,
    ``"posit4_es<e>"`` and ``"mixed_es<e>_<budget>"`` (e = 0, 1, 2; budgets 0.1 and 0.25, unit
    importance), plus ``"posits_es<e>_<budget>"``: the fraction of weights the mixed
    assignment made posits (it leaves budget unused where a posit would not lower the error).
    Accuracy on digits is within a few test samples for most choices; the weight error is
    the steadier measure.
    """
    model = digits_mlp(seed, hidden)[0]
    weights = [w.detach() for w in _linear_weights(model).values()]
    total = sum(float((w.double() ** 2).sum()) for w in weights)

    def rel(fn):
        return sum(float(((fn(w).double() - w.double()) ** 2).sum()) for w in weights) / total

    out = {"fixp4": rel(lambda w: quantize_fixp4(w).dequantized)}
    for es in (0, 1, 2):
        out[f"posit4_es{es}"] = rel(lambda w, es=es: quantize_posit4(w, es).dequantized)
    for es in (0, 1, 2):
        for budget in (0.1, 0.25):
            qs = [mixed_quantize(w, budget, es=es) for w in weights]
            out[f"mixed_es{es}_{budget}"] = (
                sum(
                    float(((q.dequantized.double() - w.double()) ** 2).sum())
                    for q, w in zip(qs, weights, strict=True)
                )
                / total
            )
            out[f"posits_es{es}_{budget}"] = sum(int(q.w_is_posit.sum()) for q in qs) / sum(
                w.numel() for w in weights
            )
    return out
