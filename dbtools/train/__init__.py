"""Training banks of models together: data, the batched model, the training loop, calibration."""
