"""dbtools: DeepBind models, batched, for genome-scale scoring and training."""

__version__ = "0.1.0"
