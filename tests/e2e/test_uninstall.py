"""`helm uninstall` of the chart leaves no operator object behind: not its Deployment or pods, Services,
ServiceAccounts (the workers' too), Roles, ClusterRoles and bindings, nor the operator's leader Lease. The CRDs stay,
as Helm keeps every chart's crds/ (so the users' Workflows and their history are not deleted with the operator).

Runs last in the e2e package (name order), after test_order_processing deleted its Workflow."""

from __future__ import annotations

from tests.e2e.cluster import Cluster, wait

KINDS = "deployments,replicasets,pods,services,serviceaccounts,roles,rolebindings,configmaps,secrets,leases"


def left(cluster: Cluster, namespace: str) -> list[str]:
    found = cluster.kubectl(
        "-n", namespace, "get", KINDS, "-l", f"app.kubernetes.io/instance={cluster.release}", "-o", "name"
    )  # fmt: skip
    return found.split()


def test_helm_uninstall_leaves_no_operator_objects_behind(cluster: Cluster) -> None:
    assert left(cluster, cluster.release_namespace), "the chart's objects were not found before the uninstall"
    cluster.helm("uninstall", cluster.release, "-n", cluster.release_namespace, "--wait", "--timeout", "5m")

    def nothing_left() -> bool:
        for namespace in (cluster.release_namespace, cluster.namespace):
            assert not left(cluster, namespace), (namespace, left(cluster, namespace))
        cluster_wide = cluster.kubectl(
            "get", "clusterroles,clusterrolebindings", "-l", f"app.kubernetes.io/instance={cluster.release}",
            "-o", "name",
        )  # fmt: skip
        assert not cluster_wide.split(), cluster_wide
        leases = cluster.kubectl("-n", cluster.release_namespace, "get", "leases", "-o", "name")
        assert not leases.split(), f"left in {cluster.release_namespace}: {leases}"
        pods = cluster.kubectl("-n", cluster.release_namespace, "get", "pods", "-o", "name")
        assert not pods.split(), pods
        return True

    wait("nothing of the release to be left", nothing_left, timeout=180, interval=2)
    crds = cluster.kubectl("get", "crd", "workflows.conveyor.dev", "workflowruns.conveyor.dev", "-o", "name")
    assert crds.split() == [
        "customresourcedefinition.apiextensions.k8s.io/workflows.conveyor.dev",
        "customresourcedefinition.apiextensions.k8s.io/workflowruns.conveyor.dev",
    ], crds
