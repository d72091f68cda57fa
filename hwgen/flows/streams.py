"""Cases of an operator as stream beats, and the outputs its golden model expects.

The contract (:mod:`hwgen.registry`) gives every operator's cases in the form of its
:class:`~hwgen.registry.Interface`; this module is the one place that turns them into payload
fields of the component's streams and into the expected output fields, by interface kind
alone. The energy estimate, the conformance suite's ``amaranth.sim`` run and anything else that
drives a component from Python use it; payload words are packed from the component's own
signature (:func:`pack_words`), so no bit offset is written by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .. import registry
from ..registry import Interface

__all__ = ["Beats", "beats", "pack_words", "unpack_words", "payload_fields"]


@dataclass
class Beats:
    """Stream contents of one run of an operator.

    Members
    -------
    streams : dict
        ``{stream name: {field: array}}`` in the order the streams are sent (a parameter port
        first); ``""`` is the field of a plain (non-struct) payload, ``"w.3"`` lane 3 of the
        array field ``w``.
    expected : dict
        ``{field: array}`` of the output payloads the golden model predicts, one per output.
    elements : int
        Elements processed (terms for a dot-product stream): the energy estimate's divisor.
    """

    streams: dict
    expected: dict
    elements: int
    outputs: int = field(init=False)

    def __post_init__(self):
        self.outputs = len(next(iter(self.expected.values())))


def _framing(lengths) -> tuple[np.ndarray, np.ndarray]:
    first = np.concatenate([np.arange(n) == 0 for n in lengths]).astype(np.int64)
    last = np.concatenate([np.arange(n) == n - 1 for n in lengths]).astype(np.int64)
    return first, last


def beats(op: str | registry.Operator, params, cases, row_params=None) -> Beats:
    """The beats that carry ``cases`` into operator ``op`` and the outputs they must give.

    Parameters
    ----------
    op : str or Operator
        The operator.
    params : Params
        Its configuration.
    cases : list or ndarray
        Cases in the operator's interface form: a code array (element), a list of rows (row
        kinds), a list of ``(w, a, w_is_posit)`` (dot).
    row_params : dict, optional
        ``row_param`` kind: the vectors loaded through the ``affine`` port first (default the
        identity, ``golden.row_params(p, length)``), long enough for the longest row.
    """
    op = registry.get(op) if isinstance(op, str) else op
    golden = op.golden
    kind = op.interface
    if kind is Interface.ELEMENT:
        if isinstance(cases, (list, tuple)):  # several cases back to back
            cases = np.concatenate([np.ravel(c) for c in cases]) if cases else np.zeros(0)
        codes = np.asarray(cases, dtype=np.int64).ravel()
        expected = np.asarray(golden.emulate(params, codes), dtype=np.int64)
        return Beats({"i": {"": codes}}, {"": expected}, len(codes))
    if kind.rows:
        rows = [np.asarray(r, dtype=np.int64) for r in cases]
        lengths = [len(r) for r in rows]
        streams = {}
        vectors = ()
        if kind is Interface.ROW_PARAM:
            width = max(lengths)
            if row_params is None:
                row_params = golden.row_params(params, width)
            vectors = tuple(np.asarray(v, dtype=np.int64) for v in row_params.values())
            if min(len(v) for v in vectors) < width:
                raise ValueError(f"row parameters cover fewer than the {width} channels of a row")
            # channels past the longest row are never read: load only those a row uses
            loads = {k: v[:width] for k, v in zip(row_params, vectors, strict=True)}
            streams["affine"] = {"addr": np.arange(width), **loads}
        out = [golden.emulate(params, r, *(v[: len(r)] for v in vectors)) for r in rows]
        first, last = _framing(lengths)
        streams["i"] = {"data": np.concatenate(rows), "last": last}
        expected = {"data": np.concatenate(out).astype(np.int64), "first": first, "last": last}
        return Beats(streams, expected, sum(lengths))
    if kind is Interface.DOT:
        lanes = params.lanes
        fields = golden.dot_fields(params)
        cols: dict[str, list] = {"first": [], "last": [], "w_is_posit": []}
        cols |= {f"w.{k}": [] for k in range(lanes)} | {f"a.{k}": [] for k in range(lanes)}
        expected, terms = [], 0
        for w, a, fmt in cases:
            n = len(w)
            expected.append(int(golden.emulate(params, w, a, fmt if fields.formats_used else None)))
            n_beats = -(-n // lanes)
            pad = n_beats * lanes - n  # zero weights add nothing in either format
            w = np.concatenate([np.asarray(w), np.zeros(pad, np.int64)]).reshape(n_beats, lanes)
            a = np.concatenate([np.asarray(a), np.zeros(pad, np.int64)]).reshape(n_beats, lanes)
            f = np.concatenate([np.asarray(fmt, bool), np.zeros(pad, bool)]).reshape(n_beats, lanes)
            if not fields.formats_used:
                f[:] = False
            for k in range(lanes):
                cols[f"w.{k}"] += w[:, k].tolist()
                cols[f"a.{k}"] += a[:, k].tolist()
            cols["w_is_posit"] += (f.astype(np.int64) << np.arange(lanes)).sum(axis=1).tolist()
            cols["first"] += [1] + [0] * (n_beats - 1)
            cols["last"] += [0] * (n_beats - 1) + [1]
            terms += n_beats * lanes
        streams = {"i": {k: np.array(v, dtype=np.int64) for k, v in cols.items()}}
        return Beats(streams, {"": np.array(expected, dtype=np.int64)}, terms)
    raise ValueError(f"no stream form for interface {kind!r}")  # pragma: no cover


def payload_fields(shape) -> list[tuple[str, int, int, bool]]:
    """``(dotted name, bit offset, width, signed)`` of the leaves of a payload shape."""
    from amaranth.hdl import Shape
    from amaranth.lib import data

    if isinstance(shape, data.Layout):
        out = []
        for key, fld in shape:
            for sub, off, width, signed in payload_fields(fld.shape):
                name = str(key) if not sub else f"{key}.{sub}"
                out.append((name, fld.offset + off, width, signed))
        return out
    s = Shape.cast(shape)
    return [("", 0, s.width, s.signed)]


def pack_words(shape, values: Mapping[str, np.ndarray]) -> list[int]:
    """Pack per-field integer arrays into payload words as Amaranth lays them out.

    Parameters
    ----------
    shape : Amaranth shape or layout
        The payload shape (a plain shape takes the single key ``""``).
    values : mapping
        ``{field: array}`` with dotted names for nested fields (``"w.3"`` is lane 3 of array
        field ``w``); every array has the same length; missing fields are 0. Values are masked
        to the field width (two's complement for negative codes).

    >>> from amaranth.lib import data
    >>> layout = data.StructLayout({"data": 4, "last": 1})
    >>> pack_words(layout, {"data": np.array([3, -1]), "last": np.array([0, 1])})
    [3, 31]
    """
    fields = payload_fields(shape)
    unknown = set(values) - {name for name, *_ in fields}
    if unknown:
        raise ValueError(
            f"payload has no fields {sorted(unknown)}; it has {[f[0] for f in fields]}"
        )
    n = len(next(iter(values.values())))
    words = [0] * n
    for name, off, width, _signed in fields:
        if name not in values:
            continue
        col = np.asarray(values[name], dtype=np.int64) & ((1 << width) - 1)
        for k, v in enumerate(col.tolist()):
            words[k] |= v << off
    return words


def unpack_words(shape, words) -> dict[str, np.ndarray]:
    """Inverse of :func:`pack_words`: ``{field: array}`` (signed fields sign-extended).

    >>> from amaranth.hdl import signed
    >>> from amaranth.lib import data
    >>> unpack_words(data.StructLayout({"data": signed(4), "last": 1}), [3, 31])["data"]
    array([ 3, -1])
    """
    words = [int(w) for w in words]
    out = {}
    for name, off, width, is_signed in payload_fields(shape):
        col = np.array([(w >> off) & ((1 << width) - 1) for w in words], dtype=np.int64)
        if is_signed:
            col = col - ((col >> (width - 1)) << width)
        out[name] = col
    return out
