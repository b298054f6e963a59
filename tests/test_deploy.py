"""deploy/k8s: valid Kubernetes objects (bundled schemas, offline) that agree with the server.

No cluster runs here, so the manifests are checked against the Kubernetes JSON schemas that
kubernetes-validate ships, then against what the server and its image actually do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from flask import Flask

from serving.api import api
from serving.security import PUBLIC_ENDPOINTS
from serving.settings import Settings
from tests.conftest import GUNICORN_ARGS, PROJECT

K8S = PROJECT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.37.0"  # the newest schemas kubernetes-validate 1.37.0 bundles


def manifests() -> dict[str, dict[str, Any]]:
    """Every object in deploy/k8s, by kind."""
    objects = [
        doc
        for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]
    by_kind = {obj["kind"]: obj for obj in objects}
    assert len(by_kind) == len(objects), "one object of each kind"
    return by_kind


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    return manifests()


@pytest.fixture(scope="module")
def container(k8s: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (server,) = k8s["Deployment"]["spec"]["template"]["spec"]["containers"]
    return server


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_every_manifest_is_a_valid_kubernetes_object(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        # strict: an unknown or misspelt field is an error, not silently dropped
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_validator_catches_a_misspelt_field(k8s: dict[str, dict[str, Any]]) -> None:
    deployment = json.loads(json.dumps(k8s["Deployment"]))
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    probe["httpGett"] = probe.pop("httpGet")
    with pytest.raises(kubernetes_validate.ValidationError, match="'httpGett' was unexpected"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_example_has_each_part(k8s: dict[str, dict[str, Any]]) -> None:
    assert {kind: obj["apiVersion"] for kind, obj in k8s.items()} == {
        "ConfigMap": "v1",
        "Deployment": "apps/v1",
        "Service": "v1",
        "HorizontalPodAutoscaler": "autoscaling/v2",
        "PodDisruptionBudget": "policy/v1",
    }


def test_the_container_runs_the_dockerfile_cmd_and_the_tests_command(
    container: dict[str, Any],
) -> None:
    dockerfile = (PROJECT / "Dockerfile").read_text().splitlines()
    (cmd,) = [line.removeprefix("CMD ") for line in dockerfile if line.startswith("CMD ")]
    assert container["command"] == json.loads(cmd) == ["gunicorn", *GUNICORN_ARGS]
    assert "args" not in container


def test_the_image_installs_the_serve_extra_with_the_locked_versions_and_no_torch() -> None:
    dockerfile = (PROJECT / "Dockerfile").read_text()
    runs = [line for line in dockerfile.splitlines() if line.startswith("RUN ")]
    installs = [line for line in runs if "pip install" in line]
    # one install: the core plus serving's extra, pinned by the lock; nothing else on top
    assert len(installs) == 1
    assert 'pip install -c requirements-lock.txt ".[serve]"' in installs[0]
    assert "torch" not in " ".join(runs)
    assert "-r requirements-lock.txt" not in dockerfile  # the lock holds every extra


def configured_settings(k8s: dict[str, dict[str, Any]], container: dict[str, Any]) -> Settings:
    """The Settings a pod starts with: the ConfigMap, then the container's own env values."""
    env = dict(k8s["ConfigMap"]["data"])
    env.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
    return Settings.from_env(env)


def test_every_rag_variable_is_a_known_setting(
    k8s: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    known = {f"RAG_{name.upper()}" for name in Settings.__dataclass_fields__}
    names = set(k8s["ConfigMap"]["data"]) | {e["name"] for e in container["env"]}
    assert {n for n in names if n.startswith("RAG_")} - known == set()
    assert configured_settings(k8s, container).model_uri == "models:/rag-model@production"
    assert [ref["configMapRef"]["name"] for ref in container["envFrom"]] == [
        k8s["ConfigMap"]["metadata"]["name"]
    ]


def test_probes_hit_the_public_health_routes_on_the_served_port(
    k8s: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    paths = {
        probe: container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert paths == {
        "startupProbe": "/health",
        "readinessProbe": "/ready",
        "livenessProbe": "/health",
    }
    app = Flask(__name__)
    app.register_blueprint(api)
    routes = app.url_map.bind("localhost")
    for path in set(paths.values()):
        endpoint, _ = routes.match(path, method="GET")
        assert endpoint in PUBLIC_ENDPOINTS  # answered without an API key
    (port,) = container["ports"]
    bind_port = int(configured_settings(k8s, container).bind.rsplit(":", 1)[1])
    assert port["containerPort"] == bind_port
    assert f"RAG_BIND=0.0.0.0:{bind_port}" in (PROJECT / "Dockerfile").read_text()
    assert {container[p]["httpGet"]["port"] for p in paths} == {port["name"]}
    assert k8s["Service"]["spec"]["ports"][0]["targetPort"] == port["name"]


def test_the_grace_period_covers_the_pre_stop_sleep_and_gunicorns_graceful_timeout(
    k8s: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    pod = k8s["Deployment"]["spec"]["template"]["spec"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    graceful = configured_settings(k8s, container).graceful_timeout
    # Kubernetes counts the preStop hook inside the grace period, then sends SIGTERM
    assert pod["terminationGracePeriodSeconds"] > int(command[1]) + graceful


def test_service_hpa_and_budget_select_the_deployments_pods(
    k8s: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    deployment = k8s["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    assert k8s["Service"]["spec"]["selector"] == labels
    assert k8s["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    target = k8s["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    # CPU utilization is measured against the request, so there must be one
    assert container["resources"]["requests"]["cpu"]
