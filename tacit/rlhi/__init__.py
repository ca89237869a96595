"""RLHI (Jin et al., 2025): policy training data from real conversations: re-attempt preference pairs,
user personas, and their export for DPO and reward-model trainers."""
