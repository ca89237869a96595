"""The scoring service: FastAPI app, micro-batching, hot swap of promoted models, Ray Serve deployment."""
