"""The Helm chart (deploy/helm/tci), checked offline: `helm lint` and the template rendering of
Helm's own Go library (helm-python-sdk), every rendered object validated against the Kubernetes
OpenAPI schemas bundled in kubernetes-validate, then what an operator relies on: probes, the
migration hook, secrets by reference, autoscaling, disruption budgets, the ingress."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from shared.settings import SERVICE_PORTS, Settings
from tests.conftest import ROOT, SERVICES

helm = pytest.importorskip("helm_python", reason="`make helm-check` installs helm-python-sdk")
kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="`make helm-check` installs it"
)

CHART = ROOT / "deploy" / "helm" / "tci"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas bundled.
KUBERNETES_VERSIONS = ("1.27.0", "1.37.0")
SECRETS = {"databaseUrl": "postgresql://tci:pw@db:5432/tci", "jwtSecret": "s" * 40}
RELEASE = "prod"
CONSOLE = f"{RELEASE}-tci-console"
CONSOLE_PORT = 8000  # TCI_CONSOLE_PORT's default (console/settings.py)


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every object `helm template prod deploy/helm/tci` prints, hooks included."""
    merged = {"secret": {"values": SECRETS}, **(values or {})}
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(merged)
        manifests = chart.render(merged, name=RELEASE, namespace="tci", is_install=True)
    return [
        document
        for path, text in sorted(manifests.items())
        if path.endswith((".yaml", ".yml"))
        for document in yaml.safe_load_all(text)
        if document
    ]


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} rendered"
    return found[0]


def container_of(workload: dict[str, Any]) -> dict[str, Any]:
    containers = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def env_of(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container_of(workload)["env"]}


def test_helm_lint_finds_nothing_worse_than_advice() -> None:
    report = helm.lint(CHART, {"secret": {"values": SECRETS}}, strict=True, kube_version="v1.27.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize("kubernetes", KUBERNETES_VERSIONS)
def test_every_rendered_object_is_valid_kubernetes(kubernetes: str) -> None:
    objects = render()
    assert {o["kind"] for o in objects} == {
        "Deployment", "Service", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget",
        "Job", "Secret",
    }  # fmt: skip
    for manifest in objects:
        kubernetes_validate.validate(manifest, kubernetes, strict=True)


def test_a_misspelt_field_fails_the_strict_validation() -> None:
    deployment = one(render(), "Deployment", f"{RELEASE}-tci-claims")
    container_of(deployment)  # the shape the mutation below relies on
    deployment["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_probed_on_readyz_and_healthz_at_its_documented_port(service: str) -> None:
    objects = render()
    name = f"{RELEASE}-tci-{service}"
    container = container_of(one(objects, "Deployment", name))
    assert container["args"] == [service]
    assert container["ports"] == [
        {"name": "http", "containerPort": SERVICE_PORTS[service], "protocol": "TCP"}
    ]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["resources"]["requests"]["cpu"]  # the autoscaler measures against it
    assert container["resources"]["limits"]["memory"]
    port = one(objects, "Service", name)["spec"]["ports"]
    assert port == [{"name": "http", "port": SERVICE_PORTS[service], "targetPort": "http",
                     "protocol": "TCP"}]  # fmt: skip


def test_the_console_is_probed_on_healthz_at_its_port_and_served_by_its_service() -> None:
    objects = render()
    container = container_of(one(objects, "Deployment", CONSOLE))
    assert container["args"] == ["console"]
    assert container["ports"] == [
        {"name": "http", "containerPort": CONSOLE_PORT, "protocol": "TCP"}
    ]
    # The console has no database to wait for: it is ready when it answers /healthz.
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    env = env_of(one(objects, "Deployment", CONSOLE))
    assert env["TCI_SERVICE"]["value"] == "console"
    assert env["TCI_CONSOLE_PORT"]["value"] == str(CONSOLE_PORT)
    for peer, port in SERVICE_PORTS.items():
        assert env[f"TCI_{peer.upper()}_URL"]["value"] == f"http://{RELEASE}-tci-{peer}:{port}"
    port = one(objects, "Service", CONSOLE)["spec"]["ports"]
    assert port == [{"name": "http", "port": CONSOLE_PORT, "targetPort": "http", "protocol": "TCP"}]


def test_the_console_can_be_left_out() -> None:
    objects = render({"console": {"enabled": False}})
    assert [o for o in objects if "console" in o["metadata"]["name"]] == []
    ingress = one(objects, "Ingress", f"{RELEASE}-tci")
    assert {r["host"] for r in ingress["spec"]["rules"]} == {f"{s}.tci.example" for s in SERVICES}


def test_the_console_signs_in_through_openid_connect_with_its_secret_by_reference() -> None:
    objects = render({
        "secret": {"values": {**SECRETS, "consoleOidcClientSecret": "c0ns0le-s3cret"}},
        "console": {"env": {"TCI_CONSOLE_OIDC_ISSUER": "https://id.insurer.example",
                            "TCI_CONSOLE_OIDC_CLIENT_ID": "tci-console"}},
    })  # fmt: skip
    secret = one(objects, "Secret", f"{RELEASE}-tci-secrets")
    assert secret["stringData"]["console-oidc-client-secret"] == "c0ns0le-s3cret"
    env = env_of(one(objects, "Deployment", CONSOLE))
    assert env["TCI_CONSOLE_OIDC_ISSUER"]["value"] == "https://id.insurer.example"
    assert env["TCI_CONSOLE_OIDC_CLIENT_ID"]["value"] == "tci-console"
    assert env["TCI_CONSOLE_OIDC_CLIENT_SECRET"] == {
        "name": "TCI_CONSOLE_OIDC_CLIENT_SECRET",
        "valueFrom": {"secretKeyRef": {"name": secret["metadata"]["name"],
                                       "key": "console-oidc-client-secret", "optional": True}},
    }  # fmt: skip
    assert "c0ns0le-s3cret" not in yaml.safe_dump_all([o for o in objects if o["kind"] != "Secret"])
    for service in SERVICES:  # the services never see the console's sign-in settings
        service_env = env_of(one(objects, "Deployment", f"{RELEASE}-tci-{service}"))
        assert not {n for n in service_env if n.startswith("TCI_CONSOLE_")}


@pytest.mark.parametrize("service", [*SERVICES, "console"])
def test_each_service_scales_between_bounds_and_keeps_one_pod_through_disruptions(
    service: str,
) -> None:
    objects = render()
    name = f"{RELEASE}-tci-{service}"
    deployment = one(objects, "Deployment", name)
    assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    autoscaler = one(objects, "HorizontalPodAutoscaler", name)["spec"]
    assert autoscaler["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": name}  # fmt: skip
    assert 2 <= autoscaler["minReplicas"] <= autoscaler["maxReplicas"]
    budget = one(objects, "PodDisruptionBudget", name)["spec"]
    assert budget["minAvailable"] == 1
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert budget["selector"]["matchLabels"] == selector
    assert deployment["spec"]["template"]["metadata"]["labels"].items() >= selector.items()


def test_fixed_replicas_without_autoscaling() -> None:
    objects = render({"services": {"claims": {"port": 8002, "replicas": 3,
                                              "autoscaling": {"enabled": False}}}})  # fmt: skip
    assert one(objects, "Deployment", f"{RELEASE}-tci-claims")["spec"]["replicas"] == 3
    autoscaled = {o["metadata"]["name"] for o in objects if o["kind"] == "HorizontalPodAutoscaler"}
    assert autoscaled == {f"{RELEASE}-tci-underwriting", f"{RELEASE}-tci-collections", CONSOLE}


def test_the_migration_job_runs_before_install_and_upgrade_after_its_secret() -> None:
    objects = render()
    job = one(objects, "Job", f"{RELEASE}-tci-migrate")
    hooks = job["metadata"]["annotations"]
    assert set(hooks["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in hooks["helm.sh/hook-delete-policy"]
    assert container_of(job)["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    secret = one(objects, "Secret", f"{RELEASE}-tci-secrets")
    secret_hooks = secret["metadata"]["annotations"]
    assert set(secret_hooks["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert int(secret_hooks["helm.sh/hook-weight"]) < int(hooks["helm.sh/hook-weight"])
    assert (
        env_of(job)["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"]
        == secret["metadata"]["name"]
    )


def test_the_database_url_and_jwt_secret_are_read_from_the_secret_only() -> None:
    objects = render()
    secret = one(objects, "Secret", f"{RELEASE}-tci-secrets")
    assert secret["stringData"] == {"database-url": SECRETS["databaseUrl"],
                                    "jwt-secret": SECRETS["jwtSecret"]}  # fmt: skip
    for workload in (o for o in objects if o["kind"] in ("Deployment", "Job")):
        env = env_of(workload)
        pairs: tuple[tuple[str, str], ...] = (
            ("DATABASE_URL", "database-url"), ("TCI_JWT_SECRET", "jwt-secret"))  # fmt: skip
        if workload["metadata"]["name"] == CONSOLE:
            # The console has no database: it is given neither its URL nor Redis's.
            assert "DATABASE_URL" not in env and "TCI_REDIS_URL" not in env
            pairs = (("TCI_JWT_SECRET", "jwt-secret"),)
        for variable, key in pairs:
            assert "value" not in env[variable]
            assert env[variable]["valueFrom"]["secretKeyRef"] == {
                "name": secret["metadata"]["name"], "key": key}  # fmt: skip
    rendered = yaml.safe_dump_all([o for o in objects if o["kind"] != "Secret"])
    assert SECRETS["jwtSecret"] not in rendered
    assert SECRETS["databaseUrl"] not in rendered


def test_an_existing_secret_is_referenced_and_none_is_made() -> None:
    objects = render({"secret": {"existingSecret": "vault-tci"}})
    assert [o for o in objects if o["kind"] == "Secret"] == []
    for workload in (o for o in objects if o["kind"] in ("Deployment", "Job")):
        refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in env_of(workload).values()
                if "valueFrom" in e}  # fmt: skip
        assert refs == {"vault-tci"}


def test_the_chart_refuses_to_render_without_its_secrets() -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmRenderError) as refused:
        chart.render({}, name=RELEASE, namespace="tci")
    assert "secret.values.databaseUrl" in str(refused.value)


def test_a_misspelt_value_is_refused_by_the_values_schema() -> None:
    with pytest.raises(helm.HelmValuesError):
        render({"worker": 4})


def test_workers_proxy_trust_and_settings_reach_every_service() -> None:
    objects = render({"workers": 4, "forwardedAllowIps": "10.0.0.0/8",
                      "env": {"TCI_ENV": "production", "TCI_BUSINESS_TZ": "Asia/Shanghai"},
                      "services": {"claims": {"port": 8002, "env": {"TCI_LOG_LEVEL": "DEBUG"}}}})  # fmt: skip
    for service in SERVICES:
        env = env_of(one(objects, "Deployment", f"{RELEASE}-tci-{service}"))
        assert env["TCI_SERVICE"]["value"] == service
        assert env["TCI_WORKERS"]["value"] == "4"
        assert env["TCI_FORWARDED_ALLOW_IPS"]["value"] == "10.0.0.0/8"
        assert env["TCI_BUSINESS_TZ"]["value"] == "Asia/Shanghai"
        assert ("TCI_LOG_LEVEL" in env) == (service == "claims")
        for peer, port in SERVICE_PORTS.items():
            assert env[f"TCI_{peer.upper()}_URL"]["value"] == f"http://{RELEASE}-tci-{peer}:{port}"


def test_pods_run_as_a_user_without_privileges_on_a_read_only_root() -> None:
    for workload in (o for o in render() if o["kind"] in ("Deployment", "Job")):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == 10001  # the image's user (Dockerfile)
        assert pod["automountServiceAccountToken"] is False
        security = container_of(workload)["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert {"name": "tmp", "mountPath": "/tmp"} in container_of(workload)["volumeMounts"]


def test_the_ingress_sends_each_host_to_its_service() -> None:
    hosts = {s: f"{s}.insurer.example" for s in (*SERVICES, "console")}
    ingress = one(render({"ingress": {"enabled": True, "className": "nginx", "hosts": hosts}}),
                  "Ingress", f"{RELEASE}-tci")  # fmt: skip
    assert ingress["spec"]["ingressClassName"] == "nginx"
    routes = {
        rule["host"]: rule["http"]["paths"][0]["backend"]["service"]
        for rule in ingress["spec"]["rules"]
    }
    assert routes == {
        hosts[s]: {"name": f"{RELEASE}-tci-{s}", "port": {"name": "http"}} for s in hosts
    }


def test_the_ingress_caps_bodies_as_the_services_do_and_bounds_the_proxy_timeouts() -> None:
    ingress = one(render(), "Ingress", f"{RELEASE}-tci")
    annotations = ingress["metadata"]["annotations"]
    # 16 MiB: TCI_MAX_BODY_BYTES' default (shared/settings.py)
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "16m"
    assert Settings().max_body_bytes == 16 * 1024 * 1024
    for timeout in ("proxy-send-timeout", "proxy-read-timeout"):
        assert 0 < int(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) <= 300
    # Annotations given at install are added to these, not in their place.
    more = {"ingress": {"annotations": {"example.com/owner": "ops"}}}
    merged = one(render(more), "Ingress", f"{RELEASE}-tci")["metadata"]["annotations"]
    assert merged == {**annotations, "example.com/owner": "ops"}


def test_the_graceful_shutdown_fits_in_the_termination_grace_period() -> None:
    deployment = one(render({"terminationGracePeriodSeconds": 45, "preStopSleepSeconds": 10}),
                     "Deployment", f"{RELEASE}-tci-claims")  # fmt: skip
    assert env_of(deployment)["TCI_GRACEFUL_SHUTDOWN_SECONDS"]["value"] == "30"
    with pytest.raises(helm.HelmRenderError):
        render({"terminationGracePeriodSeconds": 10, "preStopSleepSeconds": 10})
