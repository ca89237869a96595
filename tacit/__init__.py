"""Tacit: turn live chatbot logs into an ordinal reward model that keeps learning."""
