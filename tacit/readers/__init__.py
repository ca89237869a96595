"""Importers of chat-log formats (WildChat, LMSYS, ShareGPT, OpenAI messages, HH-RLHF, OASST, JSONL)."""
