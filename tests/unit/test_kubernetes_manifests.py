"""The Kubernetes manifests (deploy/kubernetes): valid against Kubernetes' schemas, offline,
and holding the deployment policy a later edit must not drop: probes, a non-root user with a
read-only root, resources, a grace period the settings need, QIWI's port and the operator's
port each reachable by whom they are meant for.

The kustomizations themselves are rendered with ``kubectl kustomize`` where kubectl is
installed (it is not a project dependency); everything else needs only the files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from qiwi_gw.errors import ConfigError
from qiwi_gw.server import SHUTDOWN_TIMEOUT
from qiwi_gw.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
PGBOUNCER = KUBERNETES / "components" / "pgbouncer"
NETWORK_POLICY = KUBERNETES / "components" / "network-policy"
OVERLAY = KUBERNETES / "overlays" / "existing-postgres"
# The oldest and newest schemas kubernetes-validate ships, as `make lint` checks.
KUBERNETES_VERSIONS = ("1.25.0", "1.37.0")

Manifest = dict[str, Any]

# The original image's variables, kept by name.
ORIGINAL_CONFIG = (
    *("PG_HOST", "PG_PORT", "PG_USER", "PG_DATABASE", "PG_SCHEMA", "PG_REAL_HOST"),
    *("QIWI_CHECK_URL", "QIWI_WEBHOOK_URL", "MS_TIMEZONE", "DEBUG"),
)
ORIGINAL_SECRETS = ("PG_PASSWORD", "HTTP_AUTH_USERNAME", "HTTP_AUTH_PASSWORD")


def load(path: Path) -> list[Manifest]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def resource_files() -> list[Path]:
    """Every complete manifest: kustomizations and patches are not resources."""
    return sorted(
        path
        for path in KUBERNETES.rglob("*.yaml")
        if path.name != "kustomization.yaml" and not path.name.endswith("-patch.yaml")
    )


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def base() -> list[Manifest]:
    return [manifest for path in sorted(BASE.glob("*.yaml")) for manifest in load(path)]


def containers(manifest: Manifest) -> list[Manifest]:
    pod: Manifest = manifest["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def port_number(container: Manifest, name: str) -> int:
    numbers = [p["containerPort"] for p in container["ports"] if p["name"] == name]
    assert len(numbers) == 1, f"container port {name!r}"
    return int(numbers[0])


def dockerfile_uid() -> int:
    users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), flags=re.MULTILINE)
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), f"the image's USER {uid!r} must be numeric for runAsNonRoot"
    return int(uid)


# What an overlay's Secret holds, for parsing the settings: any values of the right form.
FILLED_SECRETS = {
    "QIWI_WEBHOOK_SECRET": "whsec_QUFBQUFBQUFBQUFBQUFBQQ==",  # 16 bytes once decoded
}


def gateway_environment(manifests: list[Manifest], *, with_secrets: bool = True) -> dict[str, str]:
    """What the gateway container starts with: the ConfigMap, the Secret's keys filled in
    (as an overlay must), and the container's own ``env`` values, which win."""
    environment = dict(find(manifests, "ConfigMap", "qiwi-gw-config")["data"])
    if with_secrets:
        secret = find(manifests, "Secret", "qiwi-gw-secret")
        for key in {**secret.get("stringData", {}), **secret.get("data", {})}:
            environment[key] = FILLED_SECRETS.get(key, "filled-in")
    for variable in gateway_container(manifests).get("env", []):
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
    return environment


def gateway_container(manifests: list[Manifest]) -> Manifest:
    [container] = containers(find(manifests, "Deployment", "qiwi-gw"))
    return container


def prestop_seconds(container: Manifest) -> float:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep", command
    return float(command[1])


def shutdown_needs(settings: Settings, prestop: float) -> float:
    """The longest a replica may take from its deletion to its exit (server.serve,
    Dispatcher.stop): the preStop pause, the request drain, then the dispatcher waiting for
    its loop (two database timeouts), for deliveries in flight (the webhook timeout), and
    for handing its claims back (one database timeout)."""
    database = settings.database.timeout
    return prestop + SHUTDOWN_TIMEOUT + 2 * database + settings.webhook.timeout + database


# --- schemas ----------------------------------------------------------------------------


def kubernetes_validate(*paths: Path) -> str:
    """kubernetes-validate's complaints, strict (unknown fields are errors); '' if none. A
    kind it has no schema for is only a warning there, and a complaint here."""
    validator = Path(sys.executable).parent / "kubernetes-validate"
    assert validator.is_file(), f"{validator} is missing: `make install` (dev extras)"
    versions = [argument for version in KUBERNETES_VERSIONS for argument in ("-k", version)]
    result = subprocess.run(
        [str(validator), "--strict", "--quiet", *versions, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return (result.stdout + result.stderr).strip()


def test_every_manifest_validates_against_the_kubernetes_schemas() -> None:
    files = resource_files()
    assert {path.parent.name for path in files} >= {"base", "pgbouncer", "network-policy"}
    assert kubernetes_validate(*files) == ""


def test_the_validation_rejects_a_misspelt_field(tmp_path: Path) -> None:
    """The check above is strict: an unknown field is an error, not a silent no-op."""
    broken = tmp_path / "deployment.yaml"
    broken.write_text(
        (BASE / "deployment.yaml").read_text().replace("readinessProbe", "readyProbe")
    )
    assert "'readyProbe' was unexpected" in kubernetes_validate(broken)


def kustomization_entries(directory: Path) -> set[str]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    entries = {*kustomization.get("resources", []), *kustomization.get("components", [])}
    entries |= {patch["path"] for patch in kustomization.get("patches", [])}
    return {entry for entry in entries if not entry.startswith("..")}


@pytest.mark.parametrize("directory", [BASE, PGBOUNCER, NETWORK_POLICY, OVERLAY], ids=str)
def test_each_kustomization_lists_every_manifest_beside_it(directory: Path) -> None:
    """A file added without its kustomization line would be validated but never applied."""
    beside = {path.name for path in directory.glob("*.yaml")} - {"kustomization.yaml"}
    assert kustomization_entries(directory) == beside


# --- the gateway's Deployment -------------------------------------------------------------


def test_deployment_runs_two_replicas_as_the_images_non_root_user() -> None:
    deployment = find(base(), "Deployment", "qiwi-gw")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == dockerfile_uid()
    assert pod["automountServiceAccountToken"] is False
    assert not pod.get("initContainers"), "the Deployment must start without the migration Job"


@pytest.mark.parametrize(("kind", "name"), [("Deployment", "qiwi-gw"), ("Job", "qiwi-gw-migrate")])
def test_containers_are_locked_down_with_a_writable_tmp(kind: str, name: str) -> None:
    workload = find(base(), kind, name)
    pod = workload["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    for container in containers(workload):
        security = container["securityContext"]
        assert security["allowPrivilegeEscalation"] is False
        assert security["readOnlyRootFilesystem"] is True
        assert security["capabilities"]["drop"] == ["ALL"]
        # Nothing added back: the image serves on an unprivileged port here (PORT below).
        assert "add" not in security["capabilities"]
        scratch = "/tmp"  # noqa: S108 - the mount path checked, not a file used
        [tmp] = [mount for mount in container["volumeMounts"] if mount["mountPath"] == scratch]
        assert "emptyDir" in volumes[tmp["name"]]


def every_container() -> Iterator[tuple[str, Manifest]]:
    for path in resource_files():
        for manifest in load(path):
            if manifest["kind"] in ("Deployment", "Job"):
                for container in containers(manifest):
                    yield f"{manifest['metadata']['name']}/{container['name']}", container


def test_every_container_has_resource_requests_and_limits() -> None:
    found = dict(every_container())
    assert {"qiwi-gw/gateway", "qiwi-gw-migrate/migrate", "qiwi-gw-pgbouncer/pgbouncer"} <= set(
        found
    )
    for name, container in found.items():
        for bound in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][bound]), (name, bound)


def test_probes_readiness_on_readyz_liveness_on_healthz_on_qiwis_port() -> None:
    manifests = base()
    container = gateway_container(manifests)
    http = port_number(container, "http")
    assert int(gateway_environment(manifests)["PORT"]) == http
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert container[probe]["httpGet"]["path"] == path
        assert container[probe]["httpGet"]["port"] in ("http", http)
    # A slow start (waiting for the database, migrating) is not a failed liveness check.
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60


def test_grace_period_covers_the_drain_the_settings_need() -> None:
    manifests = base()
    settings = Settings.from_env(gateway_environment(manifests))
    container = gateway_container(manifests)
    prestop = prestop_seconds(container)
    assert prestop > 0, "the preStop pause lets the load balancer stop sending first"
    grace = find(manifests, "Deployment", "qiwi-gw")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    assert grace >= shutdown_needs(settings, prestop)


def test_grace_period_check_follows_the_webhook_timeout() -> None:
    """Raising QIWI_WEBHOOK_TIMEOUT in the ConfigMap alone makes the check fail."""
    manifests = base()
    environment = {**gateway_environment(manifests), "QIWI_WEBHOOK_TIMEOUT": "60"}
    needs = shutdown_needs(
        Settings.from_env(environment), prestop_seconds(gateway_container(manifests))
    )
    grace = find(manifests, "Deployment", "qiwi-gw")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    assert grace < needs


# --- configuration --------------------------------------------------------------------------


def test_configmap_and_secret_use_the_settings_names() -> None:
    manifests = base()
    config = find(manifests, "ConfigMap", "qiwi-gw-config")["data"]
    secret = find(manifests, "Secret", "qiwi-gw-secret")["stringData"]
    assert set(ORIGINAL_CONFIG) <= set(config)
    assert set(ORIGINAL_SECRETS) <= set(secret)
    assert {"QIWI_WEBHOOK_SECRET", "QIWI_CONSOLE_USERNAME", "QIWI_CONSOLE_PASSWORD"} <= set(secret)
    assert not any("PASSWORD" in key or "SECRET" in key for key in config)
    # A misspelt name would be ignored by the gateway: every key is one the settings read.
    known = (ROOT / "src" / "qiwi_gw" / "settings.py").read_text()
    for key in {*config, *secret}:
        assert f'"{key}"' in known, f"{key} is not a variable the gateway reads"
    # Shipped empty: an overlay fills them in; none is a committed credential.
    assert all(value == "" for value in secret.values())


def test_the_configuration_parses_and_refuses_an_open_console() -> None:
    manifests = base()
    settings = Settings.from_env(gateway_environment(manifests))
    assert settings.database.dsn is not None
    assert not settings.database.embedded_allowed
    assert settings.console.port == port_number(gateway_container(manifests), "operator")
    assert settings.console.login_required
    # Without the Secret's console credentials the gateway must not start.
    with pytest.raises(ConfigError, match="QIWI_CONSOLE"):
        Settings.from_env(gateway_environment(manifests, with_secrets=False))


# --- who reaches what -------------------------------------------------------------------------


def test_qiwis_service_exposes_port_80_only_and_the_operator_port_has_its_own() -> None:
    manifests = base()
    selector = find(manifests, "Deployment", "qiwi-gw")["spec"]["selector"]["matchLabels"]
    qiwi = find(manifests, "Service", "qiwi-gw")["spec"]
    assert [(p["port"], p["targetPort"]) for p in qiwi["ports"]] == [(80, "http")]
    assert qiwi["selector"] == selector
    operator = find(manifests, "Service", "qiwi-gw-operator")["spec"]
    assert [(p["port"], p["targetPort"]) for p in operator["ports"]] == [(8081, "operator")]


def test_network_policy_lets_the_ingress_reach_qiwis_port_and_monitoring_the_operators() -> None:
    [policy] = load(NETWORK_POLICY / "networkpolicy.yaml")
    selector = find(base(), "Deployment", "qiwi-gw")["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["podSelector"]["matchLabels"] == selector
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    allowed: dict[str, set[str]] = {}
    for rule in policy["spec"]["ingress"]:
        namespaces = {
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for peer in rule["from"]
        }
        assert all(set(peer) == {"namespaceSelector"} for peer in rule["from"])
        for port in rule["ports"]:
            allowed.setdefault(port["port"], set()).update(namespaces)
    assert allowed == {"http": {"ingress-nginx"}, "operator": {"monitoring"}}


def test_ingress_routes_only_payment_to_qiwis_service() -> None:
    [ingress] = load(OVERLAY / "ingress.yaml")
    [rule] = ingress["spec"]["rules"]
    routes = [
        (p["path"], p["pathType"], p["backend"]["service"]["name"]) for p in rule["http"]["paths"]
    ]
    assert routes == [("/payment", "Exact", "qiwi-gw")]
    assert ingress["spec"]["tls"]


def test_pdb_hpa_and_job_fit_the_deployment() -> None:
    manifests = base()
    deployment = find(manifests, "Deployment", "qiwi-gw")
    pods = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = find(manifests, "PodDisruptionBudget", "qiwi-gw")["spec"]
    assert pdb["selector"]["matchLabels"].items() <= pods.items()
    assert pdb["maxUnavailable"] == 1
    hpa = find(manifests, "HorizontalPodAutoscaler", "qiwi-gw")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "qiwi-gw",
    }
    assert hpa["minReplicas"] == deployment["spec"]["replicas"]
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    job = find(manifests, "Job", "qiwi-gw-migrate")
    [migrate] = containers(job)
    assert migrate["args"] == ["migrate"]
    assert migrate["image"] == gateway_container(manifests)["image"]
    # The Job's pod is nobody's endpoint and no replica.
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    assert not deployment["spec"]["selector"]["matchLabels"].items() <= job_labels.items()


def test_pgbouncer_component_sends_pooled_connections_through_it_and_listen_past_it() -> None:
    [patch] = load(PGBOUNCER / "gateway-env-patch.yaml")
    [container] = patch["spec"]["template"]["spec"]["containers"]
    env = {variable["name"]: variable for variable in container["env"]}
    [service] = load(PGBOUNCER / "service.yaml")
    [port] = service["spec"]["ports"]
    assert env["PG_HOST"]["value"] == service["metadata"]["name"]
    assert int(env["PG_PORT"]["value"]) == port["port"]
    # The database itself, from where the overlay wrote it once.
    for variable, key in (("PG_REAL_HOST", "PG_HOST"), ("PG_REAL_PORT", "PG_PORT")):
        assert env[variable]["valueFrom"]["configMapKeyRef"] == {
            "name": "qiwi-gw-config",
            "key": key,
        }
    [deployment] = load(PGBOUNCER / "deployment.yaml")
    [bouncer] = deployment["spec"]["template"]["spec"]["containers"]
    settings = {v["name"]: v.get("value") for v in bouncer["env"]}
    assert settings["POOL_MODE"] == "transaction"
    assert "search_path" in settings["IGNORE_STARTUP_PARAMETERS"].split(",")
    assert int(settings["LISTEN_PORT"]) == port_number(bouncer, "pgbouncer")


# --- rendered, where kubectl is installed ---------------------------------------------------


def render(directory: Path) -> list[Manifest]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the kustomizations are not rendered")
    result = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture
def overlay_copy(tmp_path: Path) -> Path:
    """deploy/kubernetes copied, with the example overlay's secret.env filled in."""
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBERNETES, copy)
    overlay = copy / "overlays" / "existing-postgres"
    shutil.copy(overlay / "secret.env.example", overlay / "secret.env")
    return overlay


def check_rendered(manifests: list[Manifest], tmp_path: Path) -> None:
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(manifests))
    assert kubernetes_validate(rendered) == ""
    settings = Settings.from_env(gateway_environment(manifests))
    container = gateway_container(manifests)
    grace = find(manifests, "Deployment", "qiwi-gw")["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    assert grace >= shutdown_needs(settings, prestop_seconds(container))


def test_base_renders_and_validates(tmp_path: Path) -> None:
    check_rendered(render(BASE), tmp_path)


def test_example_overlay_renders_with_its_namespace_image_and_policy(
    overlay_copy: Path, tmp_path: Path
) -> None:
    manifests = render(overlay_copy)
    check_rendered(manifests, tmp_path)
    assert {m["metadata"].get("namespace") for m in manifests} == {"payments"}
    assert gateway_container(manifests)["image"].startswith("registry.example.com/")
    find(manifests, "NetworkPolicy", "qiwi-gw")
    secret = find(manifests, "Secret", "qiwi-gw-secret")
    assert "PG_PASSWORD" in secret["data"]
    assert "PG_HOST" not in {v["name"] for v in gateway_container(manifests).get("env", [])}


def test_example_overlay_with_pgbouncer_keeps_the_database_address_in_one_place(
    overlay_copy: Path, tmp_path: Path
) -> None:
    kustomization = overlay_copy / "kustomization.yaml"
    text = kustomization.read_text()
    assert "  # - ../../components/pgbouncer\n" in text
    kustomization.write_text(
        text.replace("  # - ../../components/pgbouncer", "  - ../../components/pgbouncer")
    )
    manifests = render(overlay_copy)
    check_rendered(manifests, tmp_path)
    config = find(manifests, "ConfigMap", "qiwi-gw-config")["data"]
    env = {v["name"]: v for v in gateway_container(manifests)["env"]}
    assert env["PG_HOST"]["value"] == "qiwi-gw-pgbouncer"
    assert env["PG_REAL_HOST"]["valueFrom"]["configMapKeyRef"]["key"] == "PG_HOST"
    bouncer = find(manifests, "Deployment", "qiwi-gw-pgbouncer")
    [container] = containers(bouncer)
    sources = {v["name"]: v.get("valueFrom", {}) for v in container["env"]}
    assert sources["DB_HOST"]["configMapKeyRef"] == {"name": "qiwi-gw-config", "key": "PG_HOST"}
    assert config["PG_HOST"] == "db.payments.internal"
    # The migration Job goes to the database directly.
    [migrate] = containers(find(manifests, "Job", "qiwi-gw-migrate"))
    assert "env" not in migrate
