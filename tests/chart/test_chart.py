"""The Helm chart: `helm lint` (also strict), renders with defaults and with the value combinations users pick,
values.schema.json refusing bad values by name, the Grafana dashboard over the metrics the engine records, and
the rendered RBAC applied to a real API server, checked with `kubectl auth can-i` as each ServiceAccount."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs among the dev dependencies
from prometheus_client.metrics import MetricWrapperBase

from conveyor._engine import metrics
from conveyor_operator import _metrics as operator_metrics
from tests.chart.conftest import CHART, Render, find, run_helm

APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]


# --- lint -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--strict"],
        ["--strict", "--set", "watchNamespaces={team-a,team-b}", "--set", "metrics.serviceMonitor.enabled=true"],
        ["--strict", "--set", "rbac.create=false", "--set", "serviceAccount.create=false"],
        ["--strict", "--set", "ui.enabled=true", "--set", "ui.dsnSecretRef.name=pg"],
    ],
    ids=["default", "strict", "strict-namespaced-monitored", "strict-no-rbac", "strict-ui"],
)
def test_lint_passes(helm: str, args: list[str]) -> None:
    done = run_helm(helm, "lint", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def test_works_with_and_without_a_crds_directory(helm: str, tmp_path: Path) -> None:
    """crds/ is generated from the operator's models; the chart neither needs it nor breaks when it is there."""
    bare = tmp_path / "bare" / "conveyor"
    shutil.copytree(CHART, bare, ignore=shutil.ignore_patterns("crds"))
    with_crds = tmp_path / "with" / "conveyor"
    shutil.copytree(CHART, with_crds)
    if not (with_crds / "crds").is_dir():
        (with_crds / "crds").mkdir()
        (with_crds / "crds" / "example.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "apiextensions.k8s.io/v1",
                    "kind": "CustomResourceDefinition",
                    "metadata": {"name": "examples.conveyor.dev"},
                    "spec": {
                        "group": "conveyor.dev",
                        "scope": "Namespaced",
                        "names": {"plural": "examples", "singular": "example", "kind": "Example"},
                        "versions": [
                            {
                                "name": "v1alpha1",
                                "served": True,
                                "storage": True,
                                "schema": {"openAPIV3Schema": {"type": "object"}},
                            }
                        ],
                    },
                }
            )
        )
    for chart in (bare, with_crds):
        done = run_helm(helm, "lint", "--strict", chart=chart)
        assert done.returncode == 0, done.stdout + done.stderr
        done = subprocess.run(
            [helm, "template", "x", str(chart), "--include-crds"], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        kinds = [doc["kind"] for doc in yaml.safe_load_all(done.stdout) if doc]
        assert ("CustomResourceDefinition" in kinds) == (chart is with_crds)
        assert "Deployment" in kinds


# --- rendering ------------------------------------------------------------------------------------------


def test_defaults(render: Render) -> None:
    objects = render()
    (deployment,) = find(objects, "Deployment")
    assert deployment["metadata"]["namespace"] == "conveyor-system"
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == f"conveyor:{APP_VERSION}"
    assert container["command"] == ["conveyor-operator"]
    assert "--all-namespaces" in container["args"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert pod["serviceAccountName"] == "demo-conveyor"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    # Alive while it serves; ready as a standby, or as the leader once its kopf reaches the API server.
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["resources"]["requests"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CONVEYOR_WORKER_SERVICE_ACCOUNT"] == "conveyor-worker"
    assert env["CONVEYOR_LEADER_ELECTION_LEASE"] == "demo-conveyor-leader"
    # The operator makes its own Deployment the Lease's owner, so the Lease goes with an uninstall.
    assert env["CONVEYOR_OPERATOR_DEPLOYMENT"] == deployment["metadata"]["name"] == "demo-conveyor"

    (service,) = find(objects, "Service")
    assert service["spec"]["ports"][0]["port"] == 8080
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert not find(objects, "ServiceMonitor")
    assert not find(objects, "PodDisruptionBudget")
    assert not find(objects, "ConfigMap")

    accounts = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in find(objects, "ServiceAccount")}
    assert accounts == {("conveyor-system", "demo-conveyor"), ("conveyor-system", "conveyor-worker")}
    # Cluster-wide: the operator's namespaced rules come in a ClusterRole, bound cluster-wide.
    assert {o["metadata"]["name"] for o in find(objects, "ClusterRole")} == {"demo-conveyor", "demo-conveyor-workflows"}
    assert {o["metadata"]["name"] for o in find(objects, "ClusterRoleBinding")} == {
        "demo-conveyor",
        "demo-conveyor-workflows",
    }
    for obj in objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "demo"
        assert obj["metadata"]["labels"]["app.kubernetes.io/version"] == APP_VERSION


def test_service_monitor(render: Render) -> None:
    objects = render("--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.serviceMonitor.labels.team=x")
    (monitor,) = find(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["team"] == "x"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "http-metrics"
    assert endpoint["path"] == "/metrics"
    (service,) = find(objects, "Service")
    assert service["spec"]["ports"][0]["name"] == "http-metrics"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_rbac_off(render: Render) -> None:
    objects = render("--set", "rbac.create=false")
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    assert len(find(objects, "ServiceAccount")) == 2
    assert find(objects, "Deployment")


def test_existing_service_account(render: Render) -> None:
    objects = render("--set", "serviceAccount.create=false", "--set", "serviceAccount.name=mine")
    assert [o["metadata"]["name"] for o in find(objects, "ServiceAccount")] == ["conveyor-worker"]
    (deployment,) = find(objects, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "mine"
    (binding,) = [o for o in find(objects, "ClusterRoleBinding") if o["metadata"]["name"] == "demo-conveyor"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "mine", "namespace": "conveyor-system"}]


def test_watch_namespaces(render: Render) -> None:
    objects = render("--set", "watchNamespaces={team-a,team-b}")
    (deployment,) = find(objects, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args
    assert "--namespace=team-b" in args
    assert "--all-namespaces" not in args
    roles = {(o["metadata"]["namespace"], o["metadata"]["name"]) for o in find(objects, "Role")}
    assert roles == {
        ("team-a", "demo-conveyor"),
        ("team-b", "demo-conveyor"),
        ("team-a", "conveyor-worker"),
        ("team-b", "conveyor-worker"),
        ("conveyor-system", "demo-conveyor-leader-election"),
    }
    # Only what exists cluster-wide stays in a ClusterRole.
    (cluster_role,) = find(objects, "ClusterRole")
    assert [r["resources"] for r in cluster_role["rules"]] == [["customresourcedefinitions"]]
    workers = {o["metadata"]["namespace"] for o in find(objects, "ServiceAccount", "conveyor-worker")}
    assert workers == {"team-a", "team-b"}


def test_peering_toggle(render: Render) -> None:
    def resources(objects: list[dict[str, Any]]) -> set[str]:
        roles = [o for o in objects if o["kind"] in ("Role", "ClusterRole")]
        return {r for o in roles for rule in o["rules"] for r in rule["resources"]}

    assert not {"kopfpeerings", "clusterkopfpeerings"} & resources(render())
    cluster = render("--set", "peering.enabled=true")
    assert "clusterkopfpeerings" in resources(cluster)
    namespaced = render("--set", "peering.enabled=true", "--set", "watchNamespaces={team-a}")
    assert {"kopfpeerings"} == resources(namespaced) & {"kopfpeerings", "clusterkopfpeerings"}


def test_names_image_and_pdb(render: Render) -> None:
    objects = render(
        "--set",
        "fullnameOverride=orders-operator",
        "--set",
        "image.repository=registry.example.com/conveyor",
        "--set",
        "image.tag=1.2.3",
        "--set",
        "podDisruptionBudget.enabled=true",
        "--set",
        "replicaCount=3",
    )
    (deployment,) = find(objects, "Deployment")
    assert deployment["metadata"]["name"] == "orders-operator"
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.com/conveyor:1.2.3"
    (pdb,) = find(objects, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    digest = "sha256:" + "a" * 64
    (deployment,) = find(render("--set", f"image.digest={digest}"), "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"conveyor@{digest}"
    (deployment,) = find(render("--set", "nameOverride=flow"), "Deployment")
    assert deployment["metadata"]["name"] == "demo-flow"


def test_leader_election_role_reads_only_its_own_deployment(render: Render) -> None:
    for args, deployment_name in [
        ([], "demo-conveyor"),
        (["--set", "fullnameOverride=orders-operator"], "orders-operator"),
    ]:
        objects = render(*args)
        (deployment,) = find(objects, "Deployment")
        assert deployment["metadata"]["name"] == deployment_name
        (role,) = find(objects, "Role", f"{deployment_name}-leader-election")
        assert role["metadata"]["namespace"] == "conveyor-system"
        apps = [rule for rule in role["rules"] if rule["apiGroups"] == ["apps"]]
        # get, of exactly that Deployment: its uid for the Lease's ownerReference, nothing more.
        assert apps == [
            {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": [deployment_name], "verbs": ["get"]}
        ]
        named = [
            rule for rule in role["rules"] if rule.get("resourceNames") and rule["apiGroups"] == ["coordination.k8s.io"]
        ]
        assert named == [
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": [f"{deployment_name}-leader"],
                "verbs": ["get", "update", "delete"],
            }
        ]


def test_one_operator_at_a_time_without_leader_election(helm: str, render: Render) -> None:
    (deployment,) = find(render("--set", "leaderElection.enabled=false", "--set", "replicaCount=1"), "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    env = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "CONVEYOR_OPERATOR_DEPLOYMENT" not in env  # no Lease, nothing to own
    assert not [
        o
        for o in find(render("--set", "leaderElection.enabled=false", "--set", "replicaCount=1"), "Role")
        if o["metadata"]["name"].endswith("-leader-election")
    ]
    done = run_helm(helm, "template", "demo", "--set", "leaderElection.enabled=false")
    assert done.returncode != 0
    assert "leaderElection.enabled" in done.stderr


def test_operator_accepts_the_arguments(render: Render, monkeypatch: pytest.MonkeyPatch) -> None:
    """conveyor-operator parses what the chart passes, arguments and environment alike (nothing connects)."""
    from conveyor_operator._main import _parser

    parsed = []
    for args in ([], ["--set", "logLevel=debug", "--set", "watchNamespaces={team-a,team-b}"]):
        (deployment,) = find(render(*args), "Deployment")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        for item in container.get("env", []):
            if "value" in item:
                monkeypatch.setenv(item["name"], item["value"])
        parsed.append(_parser().parse_args(container["args"]))
    assert parsed[0].all_namespaces is True
    assert parsed[1].all_namespaces is False
    assert parsed[1].namespace == ["team-a", "team-b"]
    assert parsed[1].liveness == "http://0.0.0.0:8080/healthz"
    assert parsed[1].debug is True
    assert parsed[0].leader_election is True
    assert parsed[0].leader_election_lease == "demo-conveyor-leader"
    assert parsed[0].leader_election_owner == "demo-conveyor"


# --- the web UI (ui.enabled) ---------------------------------------------------------------------------

UI_ARGS = ["--set", "ui.enabled=true", "--set", "ui.dsnSecretRef.name=orders-pg"]


def ui_objects(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["metadata"]["labels"].get("app.kubernetes.io/component") == "ui"]


def test_ui_is_off_by_default(render: Render) -> None:
    objects = render("--set", "metrics.serviceMonitor.enabled=true")
    assert ui_objects(objects) == []
    assert not [o for o in objects if o["metadata"]["name"].endswith("-ui")]


def test_ui_enabled(render: Render) -> None:
    objects = render(
        *UI_ARGS,
        "--set",
        "ui.dsnSecretRef.key=url",
        "--set",
        "ui.entrypoints={orders.workflow:builder,billing.flows:make_builder}",
        "--set",
        "ui.paths={/app,/app/lib}",
        "--set",
        "ui.allowedHosts={runs.example.com}",
        "--set",
        "ui.replicaCount=2",
        "--set",
        "ui.podLabels.team=orders",
        "--set",
        "ui.podAnnotations.note=hi",
        "--set",
        "ui.nodeSelector.pool=web",
        "--set",
        "ui.service.annotations.lb=internal",
        namespace="flows",
    )
    (deployment,) = [o for o in find(objects, "Deployment") if o["metadata"]["name"] == "demo-conveyor-ui"]
    (service,) = [o for o in find(objects, "Service") if o["metadata"]["name"] == "demo-conveyor-ui"]
    assert [o["kind"] for o in ui_objects(objects)] == ["Service", "Deployment"]
    assert deployment["metadata"]["namespace"] == service["metadata"]["namespace"] == "flows"
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == f"conveyor:{APP_VERSION}"
    assert container["command"] == ["conveyor", "ui"]
    svc = "demo-conveyor-ui"
    assert container["args"] == [
        "--host=0.0.0.0",
        "--port=$(CONVEYOR_PORT)",
        "--wait-for-store",
        "--entrypoint=orders.workflow:builder",
        "--entrypoint=billing.flows:make_builder",
        "--path=/app",
        "--path=/app/lib",
        f"--allowed-host={svc}",
        f"--allowed-host={svc}.flows",
        f"--allowed-host={svc}.flows.svc",
        f"--allowed-host={svc}.flows.svc.cluster.local",
        "--allowed-host=runs.example.com",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["CONVEYOR_PORT"]["value"] == "8080"
    assert env["CONVEYOR_PG_DSN"]["valueFrom"] == {"secretKeyRef": {"name": "orders-pg", "key": "url"}}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["readinessProbe"]["timeoutSeconds"] >= 3  # above the UI's own 2 s deadline on the store
    # The chart's security contexts, and no Kubernetes API token: the UI never talks to the API server.
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsUser"] == 10001
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert pod["nodeSelector"] == {"pool": "web"}
    template = spec["template"]["metadata"]
    assert template["labels"]["team"] == "orders"
    assert template["annotations"] == {"note": "hi"}
    # The Service selects exactly the UI's pods: not the operator's, whose Service does not select the UI's.
    selector = spec["selector"]["matchLabels"]
    assert selector.items() <= template["labels"].items()
    assert service["spec"]["selector"] == selector
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert service["metadata"]["annotations"] == {"lb": "internal"}
    (operator,) = [o for o in find(objects, "Deployment") if o["metadata"]["name"] == "demo-conveyor"]
    (metrics_service,) = [o for o in find(objects, "Service") if o["metadata"]["name"] == "demo-conveyor-metrics"]
    assert not metrics_service["spec"]["selector"].items() <= template["labels"].items()
    assert not selector.items() <= operator["spec"]["template"]["metadata"]["labels"].items()
    for obj in ui_objects(objects):
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "demo"


def test_ui_service_names_follow_the_release(render: Render) -> None:
    objects = render(*UI_ARGS, "--set", "fullnameOverride=flows", "--set", "ui.allowActions=true", namespace="x")
    (deployment,) = [o for o in find(objects, "Deployment") if o["metadata"]["name"] == "flows-ui"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    hosts = [a.removeprefix("--allowed-host=") for a in args if a.startswith("--allowed-host=")]
    assert hosts == ["flows-ui", "flows-ui.x", "flows-ui.x.svc", "flows-ui.x.svc.cluster.local"]
    assert "--allow-actions" in args
    assert (
        "--allow-actions"
        not in find(render(*UI_ARGS), "Deployment", "demo-conveyor-ui")[0]["spec"]["template"]["spec"]["containers"][0][
            "args"
        ]
    )


@pytest.mark.parametrize(
    ("args", "image"),
    [
        ([], f"conveyor:{APP_VERSION}"),
        (
            ["--set", "image.repository=reg.example.com/conveyor", "--set", "image.tag=2.0"],
            "reg.example.com/conveyor:2.0",
        ),
        (["--set", "image.digest=sha256:" + "a" * 64], "conveyor@sha256:" + "a" * 64),
        (["--set", "ui.image.repository=reg.example.com/orders"], f"reg.example.com/orders:{APP_VERSION}"),
        (
            ["--set", "ui.image.repository=reg.example.com/orders", "--set", "ui.image.tag=v7"],
            "reg.example.com/orders:v7",
        ),
        # The chart's digest is its own image's: it does not pin an image of the user's.
        (
            ["--set", "image.digest=sha256:" + "a" * 64, "--set", "ui.image.repository=reg.example.com/orders"],
            f"reg.example.com/orders:{APP_VERSION}",
        ),
        (
            ["--set", "ui.image.repository=reg.example.com/orders", "--set", "ui.image.digest=sha256:" + "b" * 64],
            "reg.example.com/orders@sha256:" + "b" * 64,
        ),
    ],
    ids=[
        "chart",
        "chart-tag",
        "chart-digest",
        "own-repository",
        "own-tag",
        "own-repository-not-chart-digest",
        "own-digest",
    ],
)
def test_ui_image_defaults_to_the_charts(render: Render, args: list[str], image: str) -> None:
    (deployment,) = find(render(*UI_ARGS, *args), "Deployment", "demo-conveyor-ui")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image


@pytest.mark.parametrize(
    "args",
    [
        ["--set", "ui.enabled=true"],
        ["--set", "ui.enabled=true", "--set", "ui.dsnSecretRef.name=pg", "--set", "ui.dsnSecretRef.key="],
    ],
    ids=["no-name", "no-key"],
)
def test_ui_needs_the_dsn_secret(helm: str, args: list[str]) -> None:
    done = run_helm(helm, "template", "demo", *args)
    assert done.returncode != 0, done.stdout[:500]
    assert "ui.dsnSecretRef" in done.stderr, done.stderr


def test_ui_service_monitor(render: Render) -> None:
    assert len(find(render(*UI_ARGS), "ServiceMonitor")) == 0
    assert len(find(render("--set", "metrics.serviceMonitor.enabled=true"), "ServiceMonitor")) == 1
    objects = render(
        *UI_ARGS, "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.serviceMonitor.labels.team=x"
    )
    (monitor,) = find(objects, "ServiceMonitor", "demo-conveyor-ui")
    assert monitor["metadata"]["labels"]["team"] == "x"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("http", "/metrics", "30s")
    # Each ServiceMonitor selects its own Service, by a port that Service has.
    for name, service_name in (("demo-conveyor-ui", "demo-conveyor-ui"), ("demo-conveyor", "demo-conveyor-metrics")):
        (monitor,) = find(objects, "ServiceMonitor", name)
        selected = [
            s["metadata"]["name"]
            for s in find(objects, "Service")
            if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]
        assert selected == [service_name]
        (service,) = find(objects, "Service", service_name)
        assert monitor["spec"]["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}


def test_conveyor_ui_accepts_the_arguments(render: Render, monkeypatch: pytest.MonkeyPatch) -> None:
    """`conveyor ui` parses what the chart passes, after the API server's $(VAR) expansion (nothing connects)."""
    from conveyor.cli._ui import ui

    objects = render(*UI_ARGS, "--set", "ui.entrypoints={orders.workflow:builder}", "--set", "ui.allowActions=true")
    (deployment,) = find(objects, "Deployment", "demo-conveyor-ui")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in container["args"]]
    monkeypatch.setenv("CONVEYOR_PG_DSN", "postgresql://ui@db/conveyor")  # what the secretKeyRef gives
    params = ui.make_context("ui", args).params
    assert (params["host"], params["port"]) == ("0.0.0.0", 8080)
    assert params["entrypoints"] == ("orders.workflow:builder",)
    assert params["allow_actions"] is True
    assert params["dsn"] == "postgresql://ui@db/conveyor"
    assert "demo-conveyor-ui.conveyor-system.svc.cluster.local" in params["allowed_hosts"]


# --- values.schema.json ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--set", "replicaCount=two"], "replicaCount"),
        (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
        (["--set", "replicaz=2"], "replicaz"),
        (["--set", "metrics.serviceMonitor.intervall=1m"], "intervall"),
        (["--set", "metrics.serviceMonitor.enabled=yes"], "enabled"),
        (["--set", "watchNamespaces={Team_A}"], "watchNamespaces"),
        (["--set", "logLevel=loud"], "logLevel"),
        (["--set", "port=70000"], "port"),
        (["--set", "ui.enabled=yes"], "ui/enabled"),
        (["--set", "ui.replicaCount=-1"], "ui/replicaCount"),
        (["--set", "ui.service.type=Ingress"], "ui/service/type"),
        (["--set", "ui.service.port=0"], "ui/service/port"),
        (["--set", "ui.entrypoints={orders.workflow}"], "ui/entrypoints/0"),
        (["--set", "ui.allowedHosts={https://ui.example.com}"], "ui/allowedHosts/0"),
        (["--set", "ui.dsnSecretRef.nam=pg"], "nam"),
        (["--set", "ui.dsnSecretRef.name=Not_A_Secret"], "ui/dsnSecretRef/name"),
        (["--set", "ui.image.digest=latest"], "ui/image/digest"),
        (["--set", "ui.image.pullPolicy=Always"], "pullPolicy"),
        (["--set", "ui.allowActions=maybe"], "ui/allowActions"),
        (["--set", "ui.readinessProbe.periodSeconds=0"], "ui/readinessProbe/periodSeconds"),
        (["--set", "ui.ingress.enabled=true"], "ingress"),
    ],
    ids=[
        "type",
        "enum",
        "unknown-top",
        "unknown-nested",
        "bool",
        "namespace-name",
        "log-level",
        "port-range",
        "ui-enabled-bool",
        "ui-replicas",
        "ui-service-type",
        "ui-service-port",
        "ui-entrypoint",
        "ui-allowed-host",
        "ui-secret-ref-unknown",
        "ui-secret-name",
        "ui-digest",
        "ui-image-unknown",
        "ui-allow-actions",
        "ui-probe",
        "ui-unknown",
    ],
)
def test_schema_refuses_bad_values(helm: str, args: list[str], field: str) -> None:
    done = run_helm(helm, "template", "demo", *args)
    assert done.returncode != 0, done.stdout[:500]
    assert "schema" in done.stderr
    assert re.search(rf"\b{field}\b", done.stderr), done.stderr


def test_schema_is_strict_where_it_defines_objects() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())

    def objects(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
        if node.get("type") == "object" and "properties" in node:
            yield path, node
        for key, child in node.get("properties", {}).items():
            yield from objects(child, f"{path}.{key}")

    defined = list(objects(schema, "values"))
    assert len(defined) > 10
    for path, node in defined:
        assert node.get("additionalProperties") is False, path
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) <= set(schema["properties"])


# --- Grafana dashboard ----------------------------------------------------------------------------------


def _defined() -> list[tuple[str, str]]:
    """The name and type of every metric the engine (every worker, `conveyor ui`) and the operator define: the
    prometheus_client objects and the engine's own collector families alike."""
    defined: list[tuple[str, str]] = []
    for module in (metrics, operator_metrics):
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                # Only MetricWrapperBase itself leaves the type unset; every metric class defined sets it.
                assert value._type is not None, value._name
                defined.append((value._name, value._type))
            elif isinstance(value, metrics.Family):
                defined.append((value.name, value.kind))
    return defined


def _exposed_names() -> set[str]:
    """The series names those metrics appear under (counters get _total, histograms _bucket/_sum/_count)."""
    names: set[str] = set()
    for base, kind in _defined():
        names |= {
            "counter": {f"{base}_total"},
            "histogram": {f"{base}_bucket", f"{base}_sum", f"{base}_count"},
        }.get(kind, {base})
    return names


# What the dashboard must show (issue 6): a metric name each, with a panel title that says it.
COVERED = {
    "workflow_process_lag_seconds": "lag",
    "workflow_process_lag_alert": "lag alert",
    "workflow_process_latency_seconds_bucket": "latency",
    "workflow_process_error_count_total": "errors",
    "workflow_process_skipped_events_count_total": "skipped events",
    "workflow_run_state_changes_total": "run state changes",
    "workflow_process_states": "process states",
    "conveyor_role_held": "role",
    "conveyor_stranded_runs": "stranded runs",
    "conveyor_operator_leader": "leading",
    "conveyor_operator_reconciles_total": "reconciles",
}


def test_grafana_dashboard(render: Render) -> None:
    assert not find(render(), "ConfigMap")
    (config_map,) = find(render("--set", "grafana.dashboard.enabled=true"), "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["conveyor.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "conveyor.json").read_text())
    targets = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    exposed = _exposed_names()
    for title, expr in targets:
        # Every name a query reads (with or without a label matcher) is one a worker or the operator serves.
        bare = re.sub(r"\{[^}]*\}|\bby \([^)]*\)", " ", expr)  # label matchers and groupings name labels
        used = set(re.findall(r"\b((?:workflow|conveyor)_[a-z_]+)\b", bare))
        assert used, (title, expr)
        assert used <= exposed, (title, used - exposed)
    # Every metric defined is on the dashboard, and each thing issue 6 asks for has a panel saying so.
    every = " ".join(expr for _, expr in targets)
    defined = _defined()
    assert {name for name, _ in defined} >= {"workflow_process_lag_alert", "workflow_process_states"}, defined
    for name, _ in defined:
        assert re.search(rf"\b{name}(_total|_bucket|_sum|_count)?\b", every), name
    for name, words in COVERED.items():
        titles = [title.lower() for title, expr in targets if re.search(rf"\b{name}\b", expr)]
        assert any(words in title for title in titles), (name, titles)
    labels = {"workflow_name", "process_name", "reason", "previous_run_state", "current_run_state", "role", "le"}
    labels |= {"kind", "result", "status"}
    for _, expr in targets:
        for group in re.findall(r"by \(([^)]*)\)", expr):
            assert {g.strip() for g in group.split(",")} <= labels, expr
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


# --- RBAC on a real API server --------------------------------------------------------------------------


class Cluster:
    """The chart's objects applied to the API server under a unique release, as namespaced or cluster-wide."""

    def __init__(self, kubectl: str, kubeconfig: str, release: str, namespace: str, watched: str | None) -> None:
        self.kubectl, self.kubeconfig = kubectl, kubeconfig
        self.release, self.namespace, self.watched = release, namespace, watched
        self.operator = f"system:serviceaccount:{namespace}:{release}-conveyor"
        self.worker_namespace = watched or namespace
        self.worker = f"system:serviceaccount:{self.worker_namespace}:conveyor-worker"
        self.lease = f"{release}-conveyor-leader"

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.kubectl, "--kubeconfig", self.kubeconfig, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def can(self, who: str, verb: str, resource: str, namespace: str | None = None, *more: str) -> bool:
        where = ["--all-namespaces"] if namespace is None else ["--namespace", namespace]
        done = self.run("auth", "can-i", verb, resource, *where, *more, "--as", who)
        answer = done.stdout.strip()
        assert answer in ("yes", "no"), done.stdout + done.stderr
        return answer == "yes"


@pytest.fixture(scope="module", params=["namespaced", "cluster-wide"])
def cluster(request: pytest.FixtureRequest, helm: str, kubectl: str, kubeconfig: str) -> Iterator[Cluster]:
    suffix = uuid.uuid4().hex[:8]
    release = f"chart-{suffix}"
    namespace = f"conveyor-chart-{suffix}"
    watched = f"{namespace}-w" if request.param == "namespaced" else None
    c = Cluster(kubectl, kubeconfig, release, namespace, watched)
    args = ["--set", "podDisruptionBudget.enabled=true", "--set", "grafana.dashboard.enabled=true", *UI_ARGS]
    if watched:
        args += ["--set", f"watchNamespaces={{{watched}}}"]
    rendered = subprocess.run(
        [helm, "template", release, str(CHART), "--namespace", namespace, "--include-crds", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    documents = [doc for doc in yaml.safe_load_all(rendered) if doc]
    crds = [doc for doc in documents if doc["kind"] == "CustomResourceDefinition"]
    objects = [doc for doc in documents if doc["kind"] != "CustomResourceDefinition"]
    namespaces = [n for n in (namespace, watched) if n]
    try:
        # The chart's CRDs first, as Helm installs them: RBAC rules about conveyor.dev resources are checked
        # against the resources the API server knows. (Shared by every test: installed, never removed.)
        assert crds, "the chart ships no CRDs"
        done = c.run("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=yaml.safe_dump_all(crds))
        assert done.returncode == 0, done.stderr
        names = [f"crd/{doc['metadata']['name']}" for doc in crds]
        done = c.run("wait", "--for=condition=Established", "--timeout=60s", *names)
        assert done.returncode == 0, done.stderr
        for n in namespaces:
            done = c.run("create", "namespace", n)
            assert done.returncode == 0, done.stderr
        # Everything the chart makes (the Deployment too: its pods just stay Pending with no kubelet), validated
        # strictly by the API server.
        done = c.run("apply", "--validate=strict", "-f", "-", stdin=yaml.safe_dump_all(objects))
        assert done.returncode == 0, done.stderr
        yield c
    finally:
        for n in namespaces:
            c.run("delete", "namespace", n, "--wait=false", "--ignore-not-found")
        selector = f"app.kubernetes.io/instance={release}"
        c.run("delete", "clusterrole,clusterrolebinding", "-l", selector, "--ignore-not-found")


def test_operator_may_do_its_job(cluster: Cluster) -> None:
    op, ns = cluster.operator, cluster.worker_namespace
    for verb, resource, more in [
        ("get", "workflows.conveyor.dev", []),
        ("watch", "workflows.conveyor.dev", []),
        ("patch", "workflows.conveyor.dev", []),
        ("patch", "workflows.conveyor.dev", ["--subresource=status"]),
        ("update", "workflowruns.conveyor.dev", ["--subresource=status"]),
        ("delete", "workflowruns.conveyor.dev", []),
        ("create", "deployments.apps", []),
        ("patch", "deployments.apps", []),
        ("delete", "deployments.apps", []),
        ("create", "events", []),
        ("create", "events.events.k8s.io", []),
        # Its workers' pods, read only (a worker's termination message says why it exited).
        ("get", "pods", []),
        ("list", "pods", []),
        ("watch", "pods", []),
    ]:
        assert cluster.can(op, verb, resource, ns, *more), (verb, resource, more)
    assert cluster.can(op, "list", "customresourcedefinitions.apiextensions.k8s.io")
    # Its own leader Lease, and no other.
    assert cluster.can(op, "create", "leases.coordination.k8s.io", cluster.namespace)
    for verb in ("get", "update", "delete"):
        assert cluster.can(op, verb, f"leases.coordination.k8s.io/{cluster.lease}", cluster.namespace), verb
        assert not cluster.can(op, verb, "leases.coordination.k8s.io/someone-else", cluster.namespace), verb
    # Its own Deployment, read for the Lease's ownerReference.
    assert cluster.can(op, "get", f"deployments.apps/{cluster.release}-conveyor", cluster.namespace)


def test_operator_may_do_nothing_else(cluster: Cluster) -> None:
    op, ns = cluster.operator, cluster.worker_namespace
    for verb, resource, namespace in [
        ("delete", "namespaces", None),
        ("get", "secrets", ns),
        ("list", "secrets", ns),
        ("create", "pods", ns),
        ("delete", "pods", ns),
        ("patch", "pods", ns),
        ("delete", "workflows.conveyor.dev", ns),
        ("create", "clusterroles.rbac.authorization.k8s.io", None),
        ("create", "rolebindings.rbac.authorization.k8s.io", ns),
        ("get", "configmaps", ns),
        ("update", "customresourcedefinitions.apiextensions.k8s.io", None),
        ("list", "leases.coordination.k8s.io", ns),
        ("list", "clusterkopfpeerings.kopf.dev", None),
    ]:
        assert not cluster.can(op, verb, resource, namespace), (verb, resource, namespace)
    assert not cluster.can(op, "get", "pods", ns, "--subresource=log")
    # Watching some namespaces: nothing outside them, and in the release namespace only its own Deployment, read.
    if cluster.watched:
        release_ns = cluster.namespace
        assert not cluster.can(op, "get", f"deployments.apps/{cluster.release}-conveyor-ui", release_ns)
        assert not cluster.can(op, "list", "deployments.apps", release_ns)
        for verb in ("update", "patch", "delete"):
            assert not cluster.can(op, verb, f"deployments.apps/{cluster.release}-conveyor", release_ns), verb
        assert not cluster.can(op, "patch", "workflows.conveyor.dev", "default", "--subresource=status")
        assert not cluster.can(op, "create", "deployments.apps", "default")
    else:
        assert cluster.can(op, "patch", "workflows.conveyor.dev", "default", "--subresource=status")


def test_worker_gets_leases_and_little_else(cluster: Cluster) -> None:
    worker, ns = cluster.worker, cluster.worker_namespace
    for verb in ("get", "list", "create", "update"):  # list: the shard fence selects a step's Leases by label
        assert cluster.can(worker, verb, "leases.coordination.k8s.io", ns), verb
    # The system worker's WorkflowRun sync.
    for verb in ("get", "list", "watch", "delete"):
        assert cluster.can(worker, verb, "workflowruns.conveyor.dev", ns), verb
    for verb in ("get", "patch", "update"):
        assert cluster.can(worker, verb, "workflowruns.conveyor.dev", ns, "--subresource=status"), verb
    # The system worker's graph in its Workflow's status: a patch of the status, nothing more.
    assert cluster.can(worker, "patch", "workflows.conveyor.dev", ns, "--subresource=status")
    for verb in ("get", "update"):
        assert not cluster.can(worker, verb, "workflows.conveyor.dev", ns, "--subresource=status"), verb
    assert not cluster.can(worker, "patch", "workflows.conveyor.dev", ns)
    assert not cluster.can(worker, "patch", "workflows.conveyor.dev", "default", "--subresource=status")
    for verb, resource, namespace in [
        ("create", "workflowruns.conveyor.dev", ns),
        ("update", "workflowruns.conveyor.dev", ns),
        ("patch", "workflowruns.conveyor.dev", ns),
        ("list", "workflowruns.conveyor.dev", "default"),
        ("watch", "leases.coordination.k8s.io", ns),
        ("delete", "leases.coordination.k8s.io", ns),
        ("get", "leases.coordination.k8s.io", "default"),
        ("list", "pods", ns),
        ("get", "secrets", ns),
        ("get", "configmaps", ns),
        ("create", "deployments.apps", ns),
        ("get", "workflows.conveyor.dev", ns),
        ("create", "events", ns),
    ]:
        assert not cluster.can(worker, verb, resource, namespace), (verb, resource, namespace)


def test_ui_objects_are_accepted_by_the_api_server(cluster: Cluster) -> None:
    """The fixture applied them with strict validation; here they are as the API server stored them."""
    name = f"{cluster.release}-conveyor-ui"
    got = cluster.run("get", "deployment,service", name, "--namespace", cluster.namespace, "-o", "json")
    assert got.returncode == 0, got.stderr
    deployment, service = sorted(json.loads(got.stdout)["items"], key=lambda o: o["kind"])
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["clusterIP"]
    # The controller manager makes its pods (Pending here: no kubelet) with the labels the Service selects.
    selector = ",".join(f"{k}={v}" for k, v in service["spec"]["selector"].items())
    deadline = time.monotonic() + 60
    while True:
        pods = cluster.run("get", "pods", "--namespace", cluster.namespace, "-l", selector, "-o", "name")
        assert pods.returncode == 0, pods.stderr
        if pods.stdout.strip() or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert pods.stdout.strip().startswith(f"pod/{name}-"), pods.stdout
