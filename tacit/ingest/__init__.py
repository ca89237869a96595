"""Ingestion: the HTTP gateway, log replay, the Faust stream worker and its Postgres sink, relabelling."""
