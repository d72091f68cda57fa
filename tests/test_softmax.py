# amaranth: UnusedElaboratable=no
# (test_component_rejects_wrong_params leaves a half-built component behind on purpose)
"""Softmax: golden-model accuracy, its building blocks, and the component in amaranth.sim."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from golden import softmax
from golden.formats import FixFormat
from golden.softmax import PadeOrder, SoftmaxParams
from hwgen.cores.softmax import Softmax
from tests.streamsim import stream_sim

DEFAULT = SoftmaxParams()
SWEEP = softmax.param_sweep()
#: the default and the base-2 table option (``options()``): both meet the issue's targets
TARGETED = [DEFAULT, *softmax.options()]


def _softmax_math(x):
    """Softmax with the math module only (independent of the NumPy reference)."""
    top = max(x)
    e = [math.exp(v - top) for v in x]
    s = math.fsum(e)
    return [v / s for v in e]


# -- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"max_len": 1}, ValueError, r"^softmax max_len must be 2 to 4096, not 1$"),
        ({"pade": "3/3"}, ValueError, r"softmax pade must be one of 1/1, 2/2, not '3/3'"),
        ({"newton_steps": 3}, ValueError, r"newton_steps must be 0 to 2, not 3"),
        ({"recip_bits": 12}, ValueError, r"recip_bits must be 2 to 10, not 12"),
        ({"out_fmt": FixFormat(1, 15)}, ValueError, r"out_fmt must be unsigned \(probabilities\)"),
        ({"out_fmt": FixFormat(0, 16, False)}, ValueError, r"needs an integer bit to hold 1\.0"),
        ({"red_fmt": FixFormat(1, 14, False)}, ValueError, r"red_fmt must have 0 integer bits"),
        ({"exp_fmt": FixFormat(1, 40, False)}, ValueError, r"exp_fmt keeps more fractional"),
        ({"exp_table_bits": 3}, ValueError, r"exp_table_bits must be 4 to 10, not 3$"),
        (
            {"exp_table_bits": 8, "pade": "1/1"},
            ValueError,
            r"^softmax pade and coef_bits set the Padé exponential, which exp_table_bits=8 "
            r"replaces; leave them at their defaults$",
        ),
        (
            {"exp_table_bits": 10, "red_fmt": FixFormat(0, 8, False)},
            ValueError,
            r"exp_table_bits \(10\) must not exceed red_fmt's fractional bits \(8\)$",
        ),
    ],
)
def test_params_rejected_with_clear_message(kwargs, error, match):
    with pytest.raises(error, match=match):
        SoftmaxParams(**kwargs)


def test_names():
    assert DEFAULT.name == "softmax_i16f10_ou16f15_n256"
    names = [p.name for p in SWEEP]
    assert len(set(names)) == len(names)


def test_sum_word_holds_max_len_ones():
    p = DEFAULT
    assert p.sum_fmt.max_code >= p.max_len * (1 << p.exp_fmt.frac_bits)


# -- building blocks -----------------------------------------------------------------------------


@pytest.mark.parametrize("p", SWEEP, ids=lambda p: p.name)
def test_reciprocal_unit_error(p):
    """Every mantissa: the table + Newton result against 1/m, within the stated accuracy."""
    fm = p.poly_fmt.frac_bits
    m = np.arange(1 << fm, 2 << fm)
    y = np.ldexp(softmax.recip(p, m).astype(float), -p.recip_fmt.frac_bits)
    rel = np.abs(y * np.ldexp(m.astype(float), -fm) - 1.0)
    seed = 2.0 ** -(p.recip_bits + 1)  # the 2/(lo+hi) seed: half the interval over m >= 1
    bound = seed ** (2**p.newton_steps) + 3 * 2.0**-p.recip_fmt.frac_bits
    assert rel.max() <= bound


def test_pade_orders_match_textbook_error():
    """The exp unit (with a 10-bit reciprocal, two Newton steps and 16-bit constants) against
    math.exp: the Padé approximant's own error shows."""
    # Padé alone: 2.3e-4 / 3.0e-2; r truncated to 14 bits and the roundings add about 6e-5
    for order, limit in ((PadeOrder.P22, 3.0e-4), (PadeOrder.P11, 3.1e-2)):
        p = DEFAULT.replace(
            pade=order,
            recip_bits=10,
            newton_steps=2,
            log2e_fmt=FixFormat(1, 16, signed=False),
            coef_bits=16,
        )
        t = -np.arange(0, 8 << p.in_fmt.frac_bits)  # x - max in [-8, 0]
        e = np.ldexp(softmax._exp(p, t).astype(float), -p.exp_fmt.frac_bits)
        ideal = np.exp(np.ldexp(t.astype(float), -p.in_fmt.frac_bits))
        rel = np.abs(e - ideal) / ideal
        big = ideal > 2.0**-3  # where rounding to exp_fmt is below 2e-5 relative
        assert rel[big].max() <= limit, order


@pytest.mark.parametrize("k", [4, 8, 10])
def test_exp2_table_holds_fractional_powers_of_two(k):
    """Each entry, its leading one restored, is 2^-((j + 1/2) / 2^k) to half an LSB."""
    p = DEFAULT.replace(exp_table_bits=k)
    f = p.exp_fmt.frac_bits + 2
    table = softmax.tables(p).exp2
    assert len(table) == 2**k and table.min() >= 0 and table.max() < 2 ** (f - 1)
    for j, v in enumerate(table.tolist()):
        assert abs(v + 2 ** (f - 1) - math.pow(2.0, -(j + 0.5) / 2**k) * 2**f) <= 0.5


@pytest.mark.parametrize("k", [6, 8, 10])
def test_exp2_exponential_error_bound(k):
    """The base-2 exponential against math.exp: the table's half-interval error 2^(2^-(k+1))
    - 1, plus log2(e) at 16 bits and the rounding to exp_fmt (below 1e-4 together here)."""
    p = DEFAULT.replace(exp_table_bits=k, log2e_fmt=FixFormat(1, 16, signed=False))
    t = -np.arange(0, 8 << p.in_fmt.frac_bits)  # x - max in [-8, 0]
    e = np.ldexp(softmax._exp(p, t).astype(float), -p.exp_fmt.frac_bits)
    ideal = np.exp(np.ldexp(t.astype(float), -p.in_fmt.frac_bits))
    rel = np.abs(e - ideal) / ideal
    big = ideal > 2.0**-3
    bound = 2.0 ** (2.0 ** -(k + 1)) - 1 + 1e-4
    assert rel[big].max() <= bound
    assert rel[big].max() > bound / 3  # the table's own error dominates, as stated


# -- accuracy of emulate -------------------------------------------------------------------------


@pytest.mark.parametrize("p", TARGETED, ids=lambda p: p.name)
def test_default_meets_error_targets(p):
    """Max |p - softmax| <= 2^-10 and |sum - 1| <= 2^-8 over random and adversarial rows."""
    stats = softmax.error_stats(p, n_rows=400, seed=3)
    assert stats["max_abs"] <= 2.0**-10
    assert stats["max_sum_err"] <= 2.0**-8


@pytest.mark.parametrize("p", TARGETED, ids=lambda p: p.name)
def test_default_against_math_module_on_adversarial_rows(p):
    for name, row in softmax.standard_cases(p).items():
        got = p.out_fmt.decode(softmax.emulate(p, row))
        want = _softmax_math(p.in_fmt.decode(row).tolist())
        assert np.abs(got - want).max() <= 2.0**-10, name


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(-32768, 32767), min_size=1, max_size=256),
)
def test_default_error_on_arbitrary_rows(codes):
    row = np.array(codes)
    for p in TARGETED:
        got = p.out_fmt.decode(softmax.emulate(p, row))
        want = _softmax_math(p.in_fmt.decode(row).tolist())
        assert np.abs(got - want).max() <= 2.0**-10
        assert abs(got.sum() - 1.0) <= 2.0**-8


def test_shift_invariance_and_permutation():
    """Adding a constant to a row (without saturating) or permuting it permutes the output."""
    p = DEFAULT
    row = softmax.random_rows(p, 1, seed=11)[0]
    row = np.clip(row, -10000, 10000)
    base = softmax.emulate(p, row)
    assert np.array_equal(softmax.emulate(p, row + 1234), base)
    perm = np.random.default_rng(0).permutation(row.size)
    assert np.array_equal(softmax.emulate(p, row[perm]), base[perm])


def test_emulate_batches_rows_on_the_last_axis():
    rows = np.stack(softmax.random_rows(DEFAULT.replace(max_len=8), 6, seed=2)[:1] * 3)
    out = softmax.emulate(DEFAULT, rows.reshape(3, 1, -1))
    assert out.shape == (3, 1, rows.shape[-1])
    assert np.array_equal(out[1, 0], softmax.emulate(DEFAULT, rows[1]))


def test_rejects_bad_rows():
    with pytest.raises(
        ValueError, match=r"rows must have length 1 to max_len=256 .* not length 300"
    ):
        softmax.emulate(DEFAULT, np.zeros(300, dtype=np.int64))
    with pytest.raises(ValueError, match=r"softmax input code 40000 is outside s6\.10"):
        softmax.emulate(DEFAULT, [0, 40000])


# -- the component in amaranth.sim ---------------------------------------------------------------


def _run(dut, rows, *, idle, backpressure, seed=0):
    payloads = [{"data": int(v), "last": k == len(r) - 1} for r in rows for k, v in enumerate(r)]
    got, ins, outs = stream_sim(
        dut, payloads, len(payloads), idle=idle, backpressure=backpressure, seed=seed
    )
    return np.array([(g.data, g.first, g.last) for g in got]), ins, outs


@pytest.mark.parametrize("p", SWEEP, ids=lambda p: p.name)
def test_component_equals_emulate_under_backpressure(p):
    p = p.replace(max_len=min(p.max_len, 32))
    rows = softmax.random_rows(p, 25, seed=4) + list(softmax.standard_cases(p).values())
    got, _, _ = _run(Softmax(p), rows, idle=0.3, backpressure=0.4, seed=1)
    assert np.array_equal(got[:, 0], np.concatenate([softmax.emulate(p, r) for r in rows]))
    firsts = np.concatenate([[1] + [0] * (len(r) - 1) for r in rows])
    lasts = np.concatenate([[0] * (len(r) - 1) + [1] for r in rows])
    assert np.array_equal(got[:, 1], firsts) and np.array_equal(got[:, 2], lasts)


def test_component_full_rate_and_latency():
    p = DEFAULT.replace(max_len=64)
    dut = Softmax(p)
    n_rows, length = 4, 40
    rng = np.random.default_rng(0)
    rows = [p.in_fmt.encode(rng.normal(0, 2, length)) for _ in range(n_rows)]
    got, ins, outs = _run(dut, rows, idle=0.0, backpressure=0.0)
    assert np.array_equal(got[:, 0], np.concatenate([softmax.emulate(p, r) for r in rows]))
    assert np.all(np.diff(ins) == 1) and np.all(np.diff(outs) == 1)
    assert outs[0] - ins[length - 1] == length + dut.latency
    assert outs[-1] - ins[0] + 1 == (n_rows + 2) * length + dut.latency - 1


def test_row_longer_than_max_len_is_cut():
    """Without `last`, a row ends after max_len elements (documented framing rule)."""
    p = DEFAULT.replace(max_len=8)
    row = np.arange(16) * 100
    got, _, _ = _run(Softmax(p), [row], idle=0.0, backpressure=0.0)
    expected = np.concatenate([softmax.emulate(p, row[:8]), softmax.emulate(p, row[8:])])
    assert np.array_equal(got[:, 0], expected)
    assert got[:, 2].tolist().count(1) == 2 and got[8, 1] == 1


def test_component_rejects_wrong_params():
    with pytest.raises(TypeError, match=r"params must be a SoftmaxParams"):
        Softmax("default")
