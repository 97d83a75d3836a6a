"""The Kubernetes examples in deploy/k8s: valid against the Kubernetes schema, and consistent with the code.

Validated by kubernetes-validate, strict (no unknown field); consistent with the code: GPUs, drain grace, secrets, the
autoscaler.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, latest_version, validate

from sorapi.adapters import backlog
from sorapi.adapters.secret_policy import API, ORCHESTRATOR, RENDER, WITHHELD
from sorapi.adapters.settings import ENV_PREFIX, Settings

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject")}
"""Custom resources: the schema validator has no schema for them; they are checked field by field below."""


def _documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, doc)
        for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None
    ]


def _one(kind: str, name: str) -> dict[str, Any]:
    found = [doc for _, doc in _documents() if doc["kind"] == kind and doc["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} manifests"
    return found[0]


def _container(deployment: str) -> dict[str, Any]:
    containers = _one("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _scraped_port(deployment: str) -> str:
    annotations = _one("Deployment", deployment)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    return str(annotations["prometheus.io/port"])


def _env(deployment: str) -> dict[str, dict[str, Any]]:
    """A container's variables: its own `env` plus the ConfigMaps it loads, by name."""
    container = _container(deployment)
    found: dict[str, dict[str, Any]] = {}
    for source in container.get("envFrom", []):
        config = _one("ConfigMap", source["configMapRef"]["name"])
        found.update({name: {"value": value} for name, value in config["data"].items()})
    found.update({item["name"]: item for item in container.get("env", [])})
    return found


@pytest.mark.parametrize(
    "name_and_doc", _documents(), ids=lambda d: f"{d[0]}:{d[1]['kind']}/{d[1]['metadata']['name']}"
)
def test_every_manifest_is_valid_kubernetes(name_and_doc: tuple[str, dict[str, Any]]) -> None:
    _, doc = name_and_doc
    if (doc["apiVersion"], doc["kind"]) in CUSTOM_KINDS:
        with pytest.raises(SchemaNotFoundError):
            validate(doc, latest_version(), strict=True)
    else:
        validate(doc, latest_version(), strict=True)


def test_the_api_orchestrator_and_render_deployments_and_the_scaler_exist() -> None:
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in _documents()}
    assert {
        ("Deployment", "sorapi-api"),
        ("Service", "sorapi-api"),
        ("Deployment", "sorapi-orchestrator"),
        ("Deployment", "sorapi-render"),
        ("ScaledObject", "sorapi-render"),
        ("Secret", "sorapi-secrets"),
    } <= kinds


def test_services_select_their_deployments_pods() -> None:
    for _, doc in _documents():
        if doc["kind"] != "Service":
            continue
        labels = [
            d["spec"]["template"]["metadata"]["labels"]
            for _, d in _documents()
            if d["kind"] == "Deployment"
            and doc["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert labels, f"Service {doc['metadata']['name']} selects no Deployment's pods"
        ports = {
            p["name"]
            for _, d in _documents()
            if d["kind"] == "Deployment"
            for c in d["spec"]["template"]["spec"]["containers"]
            for p in c.get("ports", [])
        }
        assert {p["targetPort"] for p in doc["spec"]["ports"]} <= ports


def test_a_render_pod_requests_one_gpu() -> None:
    resources = _container("sorapi-render")["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1
    assert resources["requests"]["nvidia.com/gpu"] == 1
    for deployment in ("sorapi-api", "sorapi-orchestrator"):
        assert "nvidia.com/gpu" not in str(_container(deployment)["resources"])


def test_a_render_pod_is_given_its_drain_grace_and_a_minute_for_the_upload() -> None:
    grace_s = float(_env("sorapi-render")["SORAPI_RENDER_DRAIN_GRACE_S"]["value"])
    pod = _one("Deployment", "sorapi-render")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == grace_s + 60
    compose = yaml.safe_load((K8S.parent.parent / "docker-compose.yml").read_text())["services"]["render"]
    assert float(compose["environment"]["SORAPI_RENDER_DRAIN_GRACE_S"]) == grace_s
    assert compose["stop_grace_period"] == f"{int((grace_s + 60) // 60)}m"


def test_every_process_runs_the_same_image_with_its_own_command() -> None:
    images = {_container(d)["image"] for d in ("sorapi-api", "sorapi-orchestrator", "sorapi-render")}
    images.add(_one("Job", "sorapi-migrate")["spec"]["template"]["spec"]["containers"][0]["image"])
    assert len(images) == 1
    assert _container("sorapi-api")["command"][:2] == ["sorapi", "api"]
    assert _container("sorapi-orchestrator")["command"] == ["sorapi", "worker", "orchestrator"]
    assert _container("sorapi-render")["command"][:3] == ["sorapi", "worker", "render"]


@pytest.mark.parametrize(
    ("deployment", "process"),
    [("sorapi-api", API), ("sorapi-orchestrator", ORCHESTRATOR), ("sorapi-render", RENDER)],
)
def test_each_process_gets_only_settings_that_exist_and_it_may_hold(deployment: str, process: str) -> None:
    env = _env(deployment)
    fields = {ENV_PREFIX + name.upper(): name for name in Settings.__struct_fields__}
    ours = [name for name in env if name.startswith(ENV_PREFIX)]
    assert set(ours) <= fields.keys(), set(ours) - fields.keys()
    assert not {fields[name] for name in ours} & WITHHELD[process]
    secret = _one("Secret", "sorapi-secrets")["stringData"]
    for name, item in env.items():
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "sorapi-secrets" and ref["key"] in secret, name
        if re.search(r"SECRET|TOKEN|PASSWORD|DATABASE_URL|PAYLOAD_KEY", name):
            assert "valueFrom" in item, f"{deployment}: {name} must come from the Secret"
    assert {"SORAPI_PAYLOAD_KEY", "SORAPI_S3_SECRET_KEY", "SORAPI_TEMPORAL_ADDRESS"} <= env.keys()


def test_the_scaled_object_scales_render_workers_on_the_backlog_gauge() -> None:
    scaled = _one("ScaledObject", "sorapi-render")["spec"]
    assert scaled["scaleTargetRef"]["name"] == "sorapi-render"
    assert scaled["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert 0 <= scaled["minReplicaCount"] < scaled["maxReplicaCount"]
    [trigger] = scaled["triggers"]
    assert trigger["type"] == "prometheus"
    query, queue = trigger["metadata"]["query"], _env("sorapi-render")["SORAPI_RENDER_QUEUE"]["value"]
    backlog_metric = backlog.BACKLOG_TASKS.describe()[0].name  # the name the orchestrator exports
    assert f'{backlog_metric}{{task_queue="{queue}"}}' in query
    assert f'task_queue="{queue}"' in query.split(backlog_metric)[0]  # the busy renders of the same queue
    assert float(trigger["metadata"]["threshold"]) > 0
    assert trigger["metadata"]["serverAddress"].startswith("http")
    # The backlog is exported where Prometheus scrapes it: the orchestrator's metrics port.
    assert int(_scraped_port("sorapi-orchestrator")) == Settings().orchestrator_metrics_port
    assert _env("sorapi-orchestrator")["SORAPI_METRICS_HOST"]["value"] == "0.0.0.0"
    # ... and the busy renders (Temporal SDK slots) where it scrapes the render workers' SDK metrics.
    assert int(_scraped_port("sorapi-render")) == Settings().render_sdk_metrics_port
    assert "temporal_worker_task_slots_used" in query
