"""The torch side of hwgen: drop-in modules that compute through the golden models (:mod:`.nn`),
quantizers and quantization-aware training (:mod:`.quant`), and the accuracy harness
(:mod:`.accuracy`). Kept apart from :mod:`golden` so the bit-accurate models need only NumPy."""
