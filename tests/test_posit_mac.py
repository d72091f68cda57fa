# amaranth: UnusedElaboratable=no
# (test_component_rejects_wrong_params leaves a half-built component behind on purpose)
"""Mixed MAC: exactness of the golden model, its tables, and the engine in amaranth.sim."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import posit_mac
from golden.formats import FixFormat, PositFormat
from golden.posit_mac import MacMode, MacParams
from hwgen.cores.posit_mac import MacEngine
from tests.streamsim import stream_sim

DEFAULT = MacParams()
SWEEP = posit_mac.param_sweep()


# -- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"es": 3}, ValueError, r"^posit_mac es must be 0 to 2, not 3$"),
        ({"lanes": 0}, ValueError, r"lanes must be 1 to 64, not 0"),
        ({"act_fmt": FixFormat(3, 3)}, ValueError, r"act_fmt must be 4 or 8 bits wide"),
        ({"act_fmt": FixFormat(4, 4, False)}, ValueError, r"act_fmt must be signed"),
        ({"w_fixp_fmt": FixFormat(2, 3)}, ValueError, r"must be 4 bits wide \(FixP4\)"),
        ({"mode": "int8"}, ValueError, r"mode must be one of mixed, fixp, posit"),
    ],
)
def test_params_rejected_with_clear_message(kwargs, error, match):
    with pytest.raises(error, match=match):
        MacParams(**kwargs)


def test_accumulator_is_wide_enough_for_max_terms():
    for p in SWEEP:
        t = posit_mac.tables(p)
        worst = int(np.abs(t.products).max()) * p.max_terms
        assert worst <= p.acc_fmt.max_code and -worst >= p.acc_fmt.min_code


# -- tables from the formats (independent: Fractions) ---------------------------------------------


@pytest.mark.parametrize("es", [0, 1, 2])
def test_weight_tables_are_the_exact_values(es):
    p = DEFAULT.replace(es=es)
    t = posit_mac.tables(p)
    scale = Fraction(2) ** p.w_frac
    posit = PositFormat(4, es)
    for pattern in range(16):
        value = posit.decode([pattern])[0]
        want = 0 if pattern == 8 else Fraction(value) * scale  # NaR counts as zero
        assert t.w_int[1][pattern] == want
        fixp = pattern - 16 if pattern >= 8 else pattern
        assert t.w_int[0][pattern] == Fraction(fixp, 8) * scale
        digits = t.terms[1][pattern]
        assert sum(s << k for s, k in digits) == t.w_int[1][pattern]
        assert len(digits) <= 2  # at most two shifted copies of the activation


@pytest.mark.parametrize("p", SWEEP + posit_mac.pareto_sweep(), ids=lambda p: p.name)
def test_lane_plan_stands_for_every_weight(p):
    """Every weight the mode sees is (t0 + t1) << e of its plan's states: at most two
    signed shifted copies of the activation and one of at most three post-shifts."""
    t = posit_mac.tables(p)
    plan = t.plan
    rows = {MacMode.MIXED: (0, 1), MacMode.FIXP: (0,), MacMode.POSIT: (1,)}[p.mode]
    for fmt in rows:
        for pattern in range(16):
            assert plan.value(fmt, pattern) == t.w_int[fmt][pattern]
    assert len(plan.post_shifts) <= 3 and all(st[0] == (0, 0) for st in plan.states)


def test_es1_posit_products_are_single_shifts():
    t = posit_mac.tables(DEFAULT)
    assert all(len(d) <= 1 for d in t.terms[1])


# -- emulate -------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_emulate_equals_fraction_dot_product(data):
    p = data.draw(st.sampled_from(SWEEP))
    n = data.draw(st.integers(1, 40))
    w = np.array(data.draw(st.lists(st.integers(0, 15), min_size=n, max_size=n)))
    if p.mode is MacMode.POSIT:
        a = np.array(data.draw(st.lists(st.integers(0, 15), min_size=n, max_size=n)))
        a_vals = [
            Fraction(0) if c == 8 else Fraction(v)
            for c, v in zip(a, PositFormat(4, p.es).decode(a), strict=True)
        ]
    else:
        f = p.act_fmt
        a = np.array(
            data.draw(st.lists(st.integers(f.min_code, f.max_code), min_size=n, max_size=n))
        )
        a_vals = [Fraction(int(c), 2**f.frac_bits) for c in a]
    if p.mode is MacMode.MIXED:
        fmt = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    else:
        fmt = np.full(n, p.mode is MacMode.POSIT)
    w_vals = []
    for pattern, is_posit in zip(w, fmt, strict=True):
        if is_posit:
            v = PositFormat(4, p.es).decode([pattern])[0]
            w_vals.append(Fraction(0) if pattern == 8 else Fraction(v))
        else:
            w_vals.append(Fraction(int(pattern) - 16 * (pattern >= 8), 8))
    exact = sum((x * y for x, y in zip(w_vals, a_vals, strict=True)), Fraction(0))
    got = posit_mac.emulate(p, w, a, fmt if p.mode is MacMode.MIXED else None)
    assert Fraction(int(got), 2**p.acc_frac) == exact


def test_emulate_batches_and_checks_input():
    rng = np.random.default_rng(0)
    w = rng.integers(0, 16, (3, 5, 16))
    a = rng.integers(-128, 128, (3, 5, 16))
    out = posit_mac.emulate(DEFAULT, w, a)
    assert out.shape == (3, 5)
    assert out[1, 2] == posit_mac.emulate(DEFAULT, w[1, 2], a[1, 2])
    with pytest.raises(ValueError, match=r"weight pattern 16 is not a 4-bit pattern"):
        posit_mac.emulate(DEFAULT, [16], [0])
    with pytest.raises(ValueError, match=r"activation code 200 is outside s4\.4"):
        posit_mac.emulate(DEFAULT, [1], [200])
    with pytest.raises(ValueError, match=r"max_terms=4096"):
        posit_mac.emulate(DEFAULT, np.zeros(5000, int), np.zeros(5000, int))
    with pytest.raises(ValueError, match=r"fixp baseline has FixP4 weights only"):
        posit_mac.emulate(DEFAULT.replace(mode="fixp"), [1], [1], [True])


# -- the engine in amaranth.sim ------------------------------------------------------------------


def _run(dut, beats, n_results, *, idle, backpressure, seed=0):
    payloads = [
        {
            "w": [int(x) for x in w],
            "w_is_posit": int(sum(int(b) << k for k, b in enumerate(fmt))),
            "a": [int(x) for x in a],
            "first": first,
            "last": last,
        }
        for w, fmt, a, first, last in beats
    ]
    got, ins, outs = stream_sim(
        dut, payloads, n_results, idle=idle, backpressure=backpressure, seed=seed
    )
    return np.array(got), ins, outs


def _dots(p, n, rng):
    beats, expected, acc = [], [], 0
    for d in range(n):
        n_beats = int(rng.integers(1, 4))
        clear = d == 0 or rng.random() < 0.8
        w = rng.integers(0, 16, (n_beats, p.lanes))
        if p.mode is MacMode.POSIT:
            a = rng.integers(0, 16, (n_beats, p.lanes))
        else:
            a = rng.integers(p.act_fmt.min_code, p.act_fmt.max_code + 1, (n_beats, p.lanes))
        fmt = rng.random((n_beats, p.lanes)) < 0.5
        if p.mode is not MacMode.MIXED:
            fmt[:] = p.mode is MacMode.POSIT
        mask = fmt.ravel() if p.mode is MacMode.MIXED else None
        acc = (0 if clear else acc) + int(posit_mac.emulate(p, w.ravel(), a.ravel(), mask))
        expected.append(acc)
        beats += [(w[b], fmt[b], a[b], clear and b == 0, b == n_beats - 1) for b in range(n_beats)]
    return beats, expected


@pytest.mark.parametrize("p", SWEEP, ids=lambda p: p.name)
def test_engine_equals_emulate_under_backpressure(p):
    beats, expected = _dots(p, 150, np.random.default_rng(1))
    got, _, _ = _run(MacEngine(p), beats, len(expected), idle=0.3, backpressure=0.4)
    assert got.tolist() == expected


def test_engine_full_rate_and_latency():
    p = DEFAULT
    dut = MacEngine(p)
    rng = np.random.default_rng(3)
    beats, expected = _dots(p, 200, rng)
    got, ins, outs = _run(dut, beats, len(expected), idle=0.0, backpressure=0.0)
    assert got.tolist() == expected
    assert np.all(np.diff(ins) == 1)  # one beat per clock
    last_beats = ins[[k for k, b in enumerate(beats) if b[4]]]
    assert np.all(outs - last_beats == dut.latency)


def test_component_rejects_wrong_params():
    with pytest.raises(TypeError, match=r"params must be a MacParams"):
        MacEngine(8)


@pytest.mark.parametrize("p", posit_mac.param_sweep(), ids=lambda p: p.name)
def test_error_stats_are_zero_against_float64(p):
    """The engine is exact: decoded accumulators equal float64 dot products of the decoded
    operands over random and named dot products."""
    stats = posit_mac.error_stats(p, n=300)
    assert stats["max_abs"] == 0.0 and stats["inputs"] == 300 + len(posit_mac.standard_cases(p))
