"""Refinement of raw labels: refusal validation, filters, implicit-feedback mining."""
