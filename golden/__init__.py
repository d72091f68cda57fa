"""Bit-accurate golden models of the hardware and their number formats.

One module per operator (gelu, softmax, layernorm, posit_mac) and per baseline (gelu_base,
softmax_base, layernorm_base), the formats (formats) and the parameter base (params).

Backends: every ``emulate``, the MAC's ``emulate_matmul``, the formats' conversions and the
rounding helpers take NumPy arrays (or lists and numbers) or PyTorch tensors on any device and
answer in the same library on the same device, with the same integers. They are written once
against the Python array API standard through array-api-compat (:mod:`golden.arrays`); NumPy
inputs give NumPy outputs exactly as before. Fitting the tables, references, error statistics
and test vectors stay NumPy-only. Nothing here imports torch or Amaranth.
"""
