"""TEMPORARY adapters until main's golden contract (random_cases, row_params, standard_cases
for posit_mac) is merged into this branch; removed by the merge commit. Do not use elsewhere."""

from __future__ import annotations

import numpy as np


def random_cases(golden, p, n, seed=0):
    if hasattr(golden, "random_cases"):
        return golden.random_cases(p, n, seed)
    if hasattr(golden, "random_rows"):
        import inspect

        if "length" not in inspect.signature(golden.random_rows).parameters:
            return golden.random_rows(p, n, seed)
        else:  # layernorm: fixed widths
            widths = [d for d in (192, 384, 768) if d <= p.max_len] or [p.max_len]
            return [
                golden.random_rows(p, 1, widths[k % len(widths)], seed + k)[0] for k in range(n)
            ]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        terms = min((1 if rng.random() < 0.8 else int(rng.integers(2, 4))) * p.lanes, p.max_terms)
        w = rng.integers(0, 16, terms)
        if p.mode.value == "posit":
            a = rng.integers(0, 16, terms)
        else:
            a = rng.integers(p.act_fmt.min_code, p.act_fmt.max_code + 1, terms)
        fmt = (
            rng.random(terms) < 0.5
            if p.mode.value == "mixed"
            else np.full(terms, p.mode.value == "posit")
        )
        out.append((w, a, fmt))
    return out


def row_params(golden, p, length, seed=None):
    if hasattr(golden, "row_params"):
        return golden.row_params(p, length, seed)
    if seed is None:
        return {
            "gamma": np.full(length, p.gamma_fmt.encode(1.0), dtype=np.int64),
            "beta": np.zeros(length, dtype=np.int64),
        }
    rng = np.random.default_rng(seed)
    return {
        "gamma": p.gamma_fmt.encode(rng.uniform(0.1, 2.5, length)),
        "beta": p.beta_fmt.encode(rng.normal(0.0, 1.0, length)),
    }


def standard_cases(golden, p):
    if hasattr(golden, "standard_cases"):
        return golden.standard_cases(p)
    n = min(2 * p.lanes, p.max_terms)
    fmt = np.full(n, p.mode.value != "fixp")
    return {
        "zero": (np.zeros(n, np.int64), np.zeros(n, np.int64), fmt),
        "ones": (np.full(n, 3), np.full(n, 5), fmt),
    }


class Proxy:
    def __init__(self, golden):
        self._g = golden

    def __getattr__(self, name):
        if name in ("random_cases", "row_params", "standard_cases"):
            return lambda *a, **k: globals()[name](self._g, *a, **k)
        return getattr(self._g, name)
