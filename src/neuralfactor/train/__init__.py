"""One training loop for every network: progress, checkpoints, resume, early stopping."""
