"""The reward model as trainer and serving share it: checkpoint format, ordinal head, text layouts, scorer,
and the scoring service's wire format and client."""
