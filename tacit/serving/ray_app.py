"""``tacit serve --ray``: the same app as a Ray Serve deployment, for more replicas than one process.

Each replica builds the whole app itself (builder function), so it loads its own model, runs its own
micro-batcher and follows promotions on its own: a swap needs no coordination, and a replica that fails
to load a new version keeps serving the old one like a single process does. Ray's HTTP proxy spreads the
requests; its autoscaler adds replicas between the configured bounds. A replica takes one GPU where the
cluster has them.
"""

from __future__ import annotations

from pathlib import Path

import ray
from fastapi import FastAPI
from ray import serve
from ray.serve.config import AutoscalingConfig

from tacit.core.settings import TacitSettings
from tacit.serving.loading import load_app

DEPLOYMENT = "tacit-scoring"


def application(
    settings: TacitSettings, *, version: int | None = None, checkpoint: Path | None = None
) -> serve.Application:
    """The deployment, bound; call where this process is connected to the Ray cluster."""
    gpus = 1 if ray.cluster_resources().get("GPU", 0) > 0 else 0

    def build() -> FastAPI:
        """Run on each replica as it starts (Ray takes a plain function, not a partial, for a builder)."""
        return load_app(settings, version=version, checkpoint=checkpoint)

    @serve.deployment(
        name=DEPLOYMENT,
        ray_actor_options={"num_gpus": gpus},
        autoscaling_config=AutoscalingConfig(
            min_replicas=settings.serve_ray_min_replicas,
            max_replicas=settings.serve_ray_max_replicas,
            target_ongoing_requests=settings.serve_ray_target_requests,
        ),
    )
    @serve.ingress(build)
    class TacitScoring:
        """One replica; the app built on it does all the work."""

    return TacitScoring.bind()


def build(args: dict[str, str]) -> serve.Application:
    """The import path of a KubeRay RayService or ``serve run`` (``tacit.serving.ray_app:build``): the
    champion, with the settings of the cluster's environment (its TACIT_* variables); ``args`` (from the
    Serve config) are not used."""
    return application(TacitSettings())


def run(app: serve.Application, host: str, port: int) -> None:
    """Deploy and serve until interrupted."""
    serve.start(http_options={"host": host, "port": port})
    serve.run(app, name=DEPLOYMENT, route_prefix="/", blocking=True)
