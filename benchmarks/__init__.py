"""The benchmarks: each defense measured with and without it, one module each.

Run one from the repository root as ``python -m benchmarks.NAME [--help]``; every module has a
``main(argv)`` and does nothing when imported. Shared helpers are in :mod:`benchmarks.common`.
Benchmarks run offline: the Hugging Face hub is switched off unless the environment says otherwise.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported by any benchmark
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
