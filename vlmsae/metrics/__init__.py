"""Metrics of DESIGN §5: one module per quantity on plain arrays; `evaluate` runs them all."""
