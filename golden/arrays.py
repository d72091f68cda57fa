"""Which array library a golden model computes in: NumPy or PyTorch, on any device.

The golden models are written once, against the Python array API standard, through
`array-api-compat <https://data-apis.org/array-api-compat/>`_: ``xp = namespace(codes)`` at the
top of a model gives the namespace of its input (``array_api_compat.numpy`` for NumPy arrays,
lists and scalars; ``array_api_compat.torch`` for tensors), and every operation after it is an
``xp`` function or an operator on ``xp`` arrays. NumPy in gives NumPy out, exactly as before;
a tensor in gives a tensor out on the same device, with no copy to the host. Integer results are
the same on every backend and device: the models use only int64 arithmetic that is exact (sums,
products, shifts, comparisons, table lookups), and where floating point enters (quantizing real
values) it is IEEE float64 with correctly rounded operations only.

The tables a model bakes in (``tables(p)``) are computed once in NumPy; :func:`on_device` gives
them as arrays of the input's namespace and device (cached, so a CUDA model uploads each table
once).

Speed, where the standard leaves room: the models write their own intermediates in place
(:func:`clip_`, :func:`round_`, ``overwrite`` of the rounding helper), since on a CPU the
allocation of a new array costs as much as the pass that fills it; and a model's per-row unit
(a few hundred values: row sums, leading ones, table seeds, Newton steps) runs in NumPy when
the rows are a CPU tensor (:func:`row_namespace`: the same int64 arithmetic on a view of the
same memory, without torch's per-call dispatch), on the device otherwise.

This module imports neither torch nor any other array library beyond NumPy: array-api-compat
loads a backend's wrapper only when it is handed an array of that backend.
"""

from __future__ import annotations

import collections

import array_api_compat
import numpy as np
from array_api_compat import numpy as np_xp

__all__ = [
    "namespace",
    "is_numpy",
    "int64",
    "on_device",
    "lookup",
    "bit_length",
    "size",
    "device",
    "extrema",
    "clip",
    "clip_",
    "round_",
    "row_namespace",
    "to_rows",
    "from_rows",
]


def namespace(*arrays):
    """The array API namespace of ``arrays``; NumPy's when none is an array (lists, Python
    numbers and None are ignored).

    >>> namespace([1, 2], 3).__name__
    'array_api_compat.numpy'
    """
    xp = None
    for a in arrays:
        kind = type(a)
        ns = _BY_TYPE.get(kind)
        if ns is None:  # first of its type: ask array-api-compat (False: not an array)
            ns = array_api_compat.is_array_api_obj(a) and array_api_compat.array_namespace(a)
            _BY_TYPE[kind] = ns
        if ns is not False:
            if xp is not None and ns is not xp:
                raise TypeError(f"arrays of two libraries, {xp.__name__} and {ns.__name__}")
            xp = ns
    return np_xp if xp is None else xp


# type of an argument -> its namespace, or False for non-arrays (the namespace of an array
# depends on its type alone for NumPy and torch; namespace() runs on every model call)
_BY_TYPE: dict = {}


def is_numpy(xp) -> bool:
    """Whether ``xp`` is NumPy's namespace."""
    return xp is np_xp


def int64(xp, v, like=None):
    """``v`` as an int64 array of ``xp`` (on ``like``'s device when given, e.g. for a list)."""
    if is_numpy(xp):
        return np.asarray(v, dtype=np.int64)
    if array_api_compat.is_array_api_obj(v):
        return v if v.dtype == xp.int64 else xp.astype(v, xp.int64)
    device = None if like is None else array_api_compat.device(like)
    return xp.asarray(v, dtype=xp.int64, device=device)


# id(table), device -> (table, the copy): the table itself is held so that its id stays unique
_CACHE: collections.OrderedDict = collections.OrderedDict()
_CACHE_SIZE = 256


def on_device(xp, table: np.ndarray, like):
    """A NumPy ``table`` as an array of ``xp`` on ``like``'s device (itself for NumPy).

    Copies are cached per table and device (the tables of ``tables(p)`` are built once), so a
    forward pass on a GPU uploads each table once.
    """
    if is_numpy(xp):
        return table
    device = array_api_compat.device(like)
    key = (id(table), str(device))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is table:
        _CACHE.move_to_end(key)
        return hit[1]
    copy = xp.asarray(np.array(table, copy=True), device=device)
    _CACHE[key] = (table, copy)
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return copy


def lookup(xp, table: np.ndarray, index):
    """``table[index]`` for a 1-D NumPy table and an int64 index array of any shape (each
    index in range), in ``index``'s namespace and on its device."""
    if is_numpy(xp):
        return table[index]
    on = on_device(xp, table, index)
    if array_api_compat.is_torch_namespace(xp):
        import torch  # loaded already: index is a tensor

        # the compat take() first maps negative indices, a pass these indices never need
        flat = torch.index_select(on, 0, xp.reshape(index, (-1,)))
    else:
        flat = xp.take(on, xp.reshape(index, (-1,)))
    return xp.reshape(flat, index.shape)


def device(x):
    """The device an array lives on (``"cpu"`` for NumPy)."""
    return array_api_compat.device(x)


def extrema(xp, x) -> tuple[int | float, int | float]:
    """The smallest and the largest element of a non-empty array, as Python numbers (one pass
    in torch, whose integer ``amin`` is several times slower than ``aminmax``)."""
    if array_api_compat.is_torch_namespace(xp):
        import torch  # loaded already: x is a tensor

        lo, hi = torch.aminmax(x)
        return lo.item(), hi.item()
    return xp.min(x).item(), xp.max(x).item()


def clip(xp, a, lo=None, hi=None):
    """``xp.clip(a, lo, hi)`` (a new array of ``a``'s dtype; a bound may be None), through the
    library's own clip for NumPy and torch: array-api-compat's portable NumPy clip takes some
    twenty microseconds a call, which the per-row units of the models make many of."""
    lo, hi = _bounds(a, lo, hi)
    if lo is None and hi is None:
        return xp.asarray(a, copy=True)
    if is_numpy(xp):
        return np.clip(a, lo, hi)
    if array_api_compat.is_torch_namespace(xp):
        return a.clamp(lo, hi)
    return xp.clip(a, lo, hi)


def clip_(xp, a, lo, hi):
    """``clip(a, lo, hi)`` written into ``a`` itself where the library can (NumPy, torch), for
    an array the caller owns (a model's own intermediate, never its input); returns it. Saves
    the allocation of a new array, which on a CPU costs as much as the pass itself."""
    lo, hi = _bounds(a, lo, hi)
    if lo is None and hi is None:
        return a
    if is_numpy(xp):
        return np.clip(a, lo, hi, out=a) if isinstance(a, np.ndarray) else np.clip(a, lo, hi)
    if array_api_compat.is_torch_namespace(xp):
        return a.clamp_(lo, hi)
    return xp.clip(a, lo, hi)


def _bounds(a, lo, hi):
    """Integer bounds beyond an integer array's dtype dropped (they cannot clip it, and
    NumPy and torch refuse a Python int that does not fit the dtype)."""
    dtype = a.dtype
    if isinstance(dtype, np.dtype):
        if dtype.kind not in "iu":
            return lo, hi
        info = np.iinfo(dtype)
    else:
        import torch  # loaded already: a is a tensor

        if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
            return lo, hi
        info = torch.iinfo(dtype)
    if isinstance(lo, int) and lo <= info.min:
        lo = None
    if isinstance(hi, int) and hi >= info.max:
        hi = None
    return lo, hi


def round_(xp, a):
    """``round(a)`` (half to even) written into the floating array ``a`` where the library
    can, for an array the caller owns; returns it."""
    if is_numpy(xp):
        return np.round(a, out=a) if isinstance(a, np.ndarray) else np.round(a)
    if array_api_compat.is_torch_namespace(xp):
        return a.round_()
    return xp.round(a)


def row_namespace(xp, like):
    """The namespace for a model's per-row work on small arrays derived from ``like`` (row
    sums, leading-one positions, table seeds and Newton steps on a few hundred values):
    NumPy's for NumPy arrays and CPU tensors, ``xp`` otherwise (a GPU keeps them).

    On a CPU, a torch call on a small tensor costs several microseconds of dispatch against
    NumPy's one, and a DeiT LayerNorm's per-row unit is some fifty calls: run there, the
    same int64 arithmetic (the same numbers: both are exact) costs a fraction of the time.
    The data are shared with the tensors (:func:`to_rows`, :func:`from_rows`), not copied.
    """
    if is_numpy(xp):
        return xp
    if array_api_compat.is_torch_namespace(xp) and like.device.type == "cpu":
        return np_xp
    return xp


def to_rows(rx, a):
    """``a`` in the row namespace ``rx`` (:func:`row_namespace`): a CPU tensor's NumPy view
    when ``rx`` is NumPy's, ``a`` itself otherwise."""
    if rx is np_xp and not isinstance(a, np.ndarray) and array_api_compat.is_torch_array(a):
        return a.numpy()
    return a


def from_rows(xp, a):
    """A per-row result ``a`` back in ``xp``: a NumPy array (the row namespace of a CPU
    tensor) becomes a CPU tensor sharing its memory; anything else is returned as it is."""
    if is_numpy(xp) or not isinstance(a, np.ndarray):
        return a
    import torch  # loaded already: xp is torch's namespace

    return torch.from_numpy(a if a.flags.c_contiguous else a.copy())


def size(x) -> int:
    """Number of elements of an array."""
    return array_api_compat.size(x)


def bit_length(xp, v):
    """Bit length of each non-negative int64 (0 for 0), as int64, exactly.

    Each 32-bit half is exact in float64, whose exponent (``frexp``) is its bit length; the
    array API has no ``frexp``, so NumPy's or torch's own is used (the same function).

    >>> bit_length(np_xp, np.array([0, 1, 2, 3, 255, 256, 2**53 + 1, 2**63 - 1])).tolist()
    [0, 1, 2, 2, 8, 9, 54, 63]
    """
    v = int64(xp, v)
    if is_numpy(xp):
        frexp = np.frexp
    else:
        import torch  # loaded already: v is a tensor

        frexp = torch.frexp
    high = v >> 32
    n_high = xp.astype(frexp(xp.astype(high, xp.float64))[1], xp.int64)
    n_low = xp.astype(frexp(xp.astype(v & 0xFFFFFFFF, xp.float64))[1], xp.int64)
    return xp.where(high > 0, n_high + 32, n_low)
