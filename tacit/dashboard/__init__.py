"""The dashboard: satisfaction, labels, dissatisfied follow-ups and model versions of one tenant, in a browser.

A service like the scoring service: FastAPI with server-rendered Jinja2 pages and Plotly charts whose specs
are built on the server; it reads PostgreSQL (and Kafka for lag) and never imports the other services.
"""
