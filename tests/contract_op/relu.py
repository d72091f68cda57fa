"""A test-only operator: ReLU on the element stream, golden side (NumPy only).

It lives in the tests to prove that the operator contract of :mod:`hwgen.registry` is enough:
registered from a test, it passes the conformance suite, the element-stream cocotb testbench
and ``hwgen synth`` without any flow naming it. ReLU is exact: ``emulate`` equals the
float64 ``reference`` rounded to the output format (which holds every non-negative input).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.formats import FixFormat
from golden.params import ParamsBase, Workload, check_fix


@dataclass(frozen=True)
class ReluParams(ParamsBase):
    """ReLU of ``in_fmt`` codes into ``out_fmt`` (same fractional bits, at least as wide)."""

    op = "relu"

    in_fmt: FixFormat = FixFormat(4, 4)
    out_fmt: FixFormat = FixFormat(4, 4)

    def __post_init__(self):
        check_fix("relu", "in_fmt", self.in_fmt, signed=True)
        check_fix("relu", "out_fmt", self.out_fmt, signed=True)
        if (
            self.out_fmt.frac_bits != self.in_fmt.frac_bits
            or self.out_fmt.width < self.in_fmt.width
        ):
            raise ValueError(
                "relu out_fmt must have in_fmt's fractional bits and its width or more"
            )

    @property
    def name(self) -> str:
        return f"relu_i{self.in_fmt.tag}_o{self.out_fmt.tag}"


def tables(p: ReluParams) -> dict:
    return {}


def emulate(p: ReluParams, codes) -> np.ndarray:
    return np.maximum(p.in_fmt.check_codes(codes, "relu input code"), 0)


def reference(p: ReluParams, x) -> np.ndarray:
    return np.maximum(np.asarray(x, dtype=np.float64), 0.0)


def error_stats(p: ReluParams) -> dict[str, float]:
    codes = p.in_fmt.all_codes()
    err = np.abs(p.out_fmt.decode(emulate(p, codes)) - reference(p, p.in_fmt.decode(codes)))
    return {"inputs": len(codes), "max_abs": float(err.max()), "mean_abs": float(err.mean())}


def standard_cases(p: ReluParams) -> dict[str, np.ndarray]:
    f = p.in_fmt
    return {"extremes": np.array([f.min_code, -1, 0, 1, f.max_code]), "all": f.all_codes()}


def random_cases(p: ReluParams, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(p.in_fmt.min_code, p.in_fmt.max_code + 1, n)


def param_sweep() -> list[ReluParams]:
    return [ReluParams(), ReluParams(in_fmt=FixFormat(3, 2), out_fmt=FixFormat(5, 2))]


def workload(p: ReluParams, n: int, seed: int = 0) -> Workload:
    return Workload(p.in_fmt.encode(np.random.default_rng(seed).normal(0, 2, n)), "N(0, 2)")
