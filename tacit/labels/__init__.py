"""Labelers: read a user's follow-up and rate the assistant reply it answers (satisfaction level 1..5)."""

from tacit.labels.base import Labeler
from tacit.labels.registry import get_labeler

__all__ = ["Labeler", "get_labeler"]
