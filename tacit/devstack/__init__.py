"""The embedded development stack (Tansu, PostgreSQL, local Ray), `tacit up` and the demo.

Only the CLI imports this package; services find endpoints through ``tacit.core.endpoints``."""
