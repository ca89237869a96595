"""The Kubernetes manifests in deploy/k8s: core objects valid against the API schemas (kubernetes-validate,
offline), custom resources with their required fields, and everything consistent with Tacit's own code."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import typer.main
import yaml

from tacit.cli import app
from tacit.core.kafka import required_topics
from tacit.core.settings import TacitSettings

K8S = Path(__file__).parents[2] / "deploy" / "k8s"
KUBERNETES = "1.33.0"
CUSTOM = {  # apiVersion/kind -> fields its operator requires under spec
    ("kafka.strimzi.io/v1beta2", "Kafka"): ("kafka",),
    ("kafka.strimzi.io/v1beta2", "KafkaNodePool"): ("replicas", "roles", "storage"),
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): ("partitions", "replicas"),
    ("kafka.strimzi.io/v1beta2", "KafkaUser"): ("authentication",),
    ("postgresql.cnpg.io/v1", "Cluster"): ("instances", "storage"),
    ("ray.io/v1", "RayCluster"): ("headGroupSpec",),
    ("ray.io/v1", "RayService"): ("serveConfigV2", "rayClusterConfig"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("selector", "endpoints"),
}


def documents() -> list[dict]:
    listed = yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    return [doc for name in listed for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]


def containers(doc: dict) -> list[dict]:
    found = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            found.extend(value.get("containers", []))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(doc.get("spec", {}))
    return found


@pytest.mark.parametrize("doc", [d for d in documents() if (d["apiVersion"], d["kind"]) not in CUSTOM],
                         ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_core_objects_validate_against_the_kubernetes_schema(doc: dict) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")

    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


@pytest.mark.parametrize("doc", [d for d in documents() if (d["apiVersion"], d["kind"]) in CUSTOM],
                         ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_custom_resources_have_what_their_operator_requires(doc: dict) -> None:
    required = CUSTOM[(doc["apiVersion"], doc["kind"])]

    assert all(field in doc["spec"] for field in required), (doc["kind"], required)


def test_topics_match_what_the_worker_requires() -> None:
    settings = TacitSettings(partitions=6)
    topics = {doc["spec"].get("topicName", doc["metadata"]["name"]): doc["spec"]["partitions"]
              for doc in documents() if doc["kind"] == "KafkaTopic"}

    assert topics == required_topics(settings)


def test_every_container_runs_a_tacit_command_with_known_settings() -> None:
    commands = set(typer.main.get_command(app).commands)
    known = {f"TACIT_{name.upper()}" for name in TacitSettings.model_fields} | {"RAY_ADDRESS", "HF_HUB_OFFLINE"}
    config = next(d for d in documents() if d["kind"] == "ConfigMap")
    assert set(config["data"]) <= known
    for doc in documents():
        for container in containers(doc):
            if "args" in container:
                assert container["args"][0] in commands, container["args"]
            assert {env["name"] for env in container.get("env", [])} <= known


def test_ray_service_import_path_resolves() -> None:
    ray_service = next(d for d in documents() if d["kind"] == "RayService")
    [application] = yaml.safe_load(ray_service["spec"]["serveConfigV2"])["applications"]
    module, _, name = application["import_path"].partition(":")

    builder = getattr(importlib.import_module(module), name)
    assert list(inspect.signature(builder).parameters) == ["args"]
