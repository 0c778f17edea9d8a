"""Figures of results/figures/, each from the tidy tables (never from private state)."""
