"""Training stage: datasets, the ordinal model, the training loop, evaluation, registry, Ray job."""
