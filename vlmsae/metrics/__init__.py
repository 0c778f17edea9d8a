"""Metrics of DESIGN §5: one module per quantity, each on plain arrays, plus `evaluate` to run them."""
