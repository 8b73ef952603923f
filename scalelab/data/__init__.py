"""Data pipeline: readers, preprocessing, splits, cache, approximate entropy, synthetic data."""
