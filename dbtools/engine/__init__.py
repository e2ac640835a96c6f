"""The batched forward pass of a bank: groups of models, sliding windows, the fused CPU kernel."""
