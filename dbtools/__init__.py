"""dbtools: DeepBind models, batched, for genome-scale scoring and training.

The public Python API lives in `dbtools.api` and is exported here; its names load on first
use, so `import dbtools` stays cheap (no torch until a function is called).
"""

import importlib

__version__ = "0.1.0"

__all__ = [
    "Bank", "MutationMap", "Track", "VariantEffects", "load_bank", "load_sequences", "read_variants",
    "score_sequences", "mutation_map", "plot_mutation_map", "variant_effects", "scan_region", "train_models",
]


def __getattr__(name: str):
    if name in __all__:
        return getattr(importlib.import_module("dbtools.api"), name)
    raise AttributeError(f"module 'dbtools' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
