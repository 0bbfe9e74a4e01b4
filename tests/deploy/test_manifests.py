"""The deployment files are parsed, validated against their schemas and checked for the promises
the README makes about them: probes, limits, non-root read-only containers, secrets only by
reference, and every setting the app reads provided everywhere it runs. No Docker or cluster needed.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.kustomize import all_containers, build, load_docs, parse_env_file, pod_spec
from webapp import observability
from webapp.settings import ROOT

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(p for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists())
BUILDS = {"base": K8S / "base", **{f"overlay {p.name}": p for p in OVERLAYS}}
K8S_VERSION = "1.33"
SECRET_NAME = re.compile(r"SECRET|_TOKEN$|PASSWORD|PASS$|_KEY$|^DATABASE_URL$|^AMQP_URL$")
CREDENTIALS_IN_URL = re.compile(r"://([^:/@\s]+):([^@\s]+)@")
# Variables the image or the production server read besides webapp/settings.py.
SERVER_ONLY = {"WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR", "FORWARDED_ALLOW_IPS"}


# ---- what the app reads -------------------------------------------------------------------------

def settings_env_names() -> set[str]:
    """Every environment variable webapp/settings.py reads: _env("X", _int("X", _seconds("X",
    os.environ.get("X") ... so a setting added there is checked here without editing this test."""
    source = (ROOT / "webapp" / "settings.py").read_text()
    pattern = r'(?:\b_[a-z_]+|os\.environ\.get|os\.getenv)\(\s*"([A-Z][A-Z0-9_]*)"|os\.environ\[\s*"([A-Z][A-Z0-9_]*)"\s*\]'
    return {a or b for a, b in re.findall(pattern, source)}


def test_settings_names_are_found():
    names = settings_env_names()
    assert {"DATABASE_URL", "SECRET_KEY", "AMQP_URL", "APP_ENV", "TWILIO_AUTH_TOKEN", "METRICS_PORT"} <= names


def integration_kinds() -> set[str]:
    """The integration kinds the project registers (pyproject entry points), plus sheets."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    registered = pyproject["project"].get("entry-points", {}).get("formwright.integrations", {})
    return set(registered) | {"sheets", "sms", "webhook"}


# ---- Kubernetes -----------------------------------------------------------------------------------

@cache
def built(name: str) -> list[dict[str, Any]]:
    return build(BUILDS[name])


def by_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def test_every_manifest_file_parses_and_is_listed_somewhere():
    listed: set[Path] = set()
    for directory in [K8S / "base", *OVERLAYS]:
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
        listed |= {(directory / r).resolve() for r in kustomization.get("resources", [])}
        listed |= {(directory / p["path"]).resolve() for p in kustomization.get("patches", [])}
        listed |= {(directory / e).resolve() for g in kustomization.get("configMapGenerator", [])
                   for e in g.get("envs", [])}
    for path in K8S.rglob("*"):
        if path.is_file() and path.name != "kustomization.yaml":
            if path.suffix in {".yaml", ".yml"}:
                assert load_docs(path), f"{path} is empty"
            assert path.resolve() in listed, f"{path.relative_to(ROOT)} is not used by any kustomization"


CRD_REQUIRED = {
    ("postgresql.cnpg.io/v1", "Cluster"): [("spec", "instances"), ("spec", "storage", "size"),
                                           ("spec", "bootstrap", "initdb", "database")],
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): [("spec", "replicas"), ("spec", "persistence", "storage")],
    ("monitoring.coreos.com/v1", "PodMonitor"): [("spec", "selector"), ("spec", "podMetricsEndpoints")],
}


def _dig(obj: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(obj, dict) or part not in obj:
            return None
        obj = obj[part]
    return obj


@pytest.mark.parametrize("name", BUILDS)
def test_resources_validate_against_kubernetes_schemas(name):
    """Core kinds against the Kubernetes OpenAPI schemas (strict: unknown fields are errors);
    operator CRDs, whose schemas are not bundled, by the fields the operators require."""
    for resource in built(name):
        key = (resource["apiVersion"], resource["kind"])
        where = f"{name}: {resource['kind']}/{resource['metadata']['name']}"
        if key in CRD_REQUIRED:
            for path in CRD_REQUIRED[key]:
                assert _dig(resource, path) is not None, f"{where} lacks {'.'.join(path)}"
            continue
        try:
            kubernetes_validate.validate(resource, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}")


def test_a_schema_violation_is_caught():
    """The validator is really looking: a misspelt field in a copy of our Deployment fails."""
    deployment = by_kind(built("base"), "Deployment")["formwright-web"]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


@pytest.mark.parametrize("name", BUILDS)
def test_every_deployment_has_probes_limits_and_a_locked_down_container(name):
    resources = built(name)
    workloads = {**by_kind(resources, "Deployment"), **by_kind(resources, "Job")}
    assert workloads
    for wname, workload in workloads.items():
        spec = pod_spec(workload)
        pod_security = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, wname
        for container in spec["containers"]:
            where = f"{wname}/{container['name']}"
            if workload["kind"] == "Deployment":
                ports = {p["name"] for p in container.get("ports", [])}
                for probe in ("readinessProbe", "livenessProbe"):
                    assert probe in container, f"{where} has no {probe}"
                    assert container[probe]["httpGet"]["port"] in ports, f"{where}: {probe} port is not declared"
                assert container["livenessProbe"]["httpGet"]["path"] == "/health", where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container.get("resources", {}).get(kind, {})), f"{where}: {kind}"
            security = container.get("securityContext", {})
            assert security.get("runAsNonRoot", pod_security.get("runAsNonRoot")) is True, where
            assert security.get("runAsUser", pod_security.get("runAsUser", 0)) != 0, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("capabilities", {}).get("drop") == ["ALL"], where
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: a read-only root needs a writable /tmp"


def test_web_probes_use_health_for_liveness_and_ready_for_readiness():
    web = by_kind(built("base"), "Deployment")["formwright-web"]
    container = pod_spec(web)["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PROMETHEUS_MULTIPROC_DIR"].startswith("/tmp/"), "multi-process metrics need the writable /tmp"


def _secret_backed(env: list[dict[str, Any]]) -> set[str]:
    return {e["name"] for e in env if "secretKeyRef" in e.get("valueFrom", {})}


@pytest.mark.parametrize("name", BUILDS)
def test_secrets_are_referenced_never_inlined(name):
    resources = built(name)
    assert not by_kind(resources, "Secret"), "Secrets are created out of band, never kept in the repository"
    for config_map in by_kind(resources, "ConfigMap").values():
        secret_like = [k for k in config_map.get("data", {}) if SECRET_NAME.search(k)]
        assert not secret_like, f"ConfigMap {config_map['metadata']['name']} holds {secret_like}"
    for container in all_containers(resources):
        env = container.get("env", [])
        backed = _secret_backed(env)
        for item in env:
            if not SECRET_NAME.search(item["name"]) or item["name"] in backed:
                continue
            # A value may only assemble secrets from other secret-backed variables: $(USER):$(PASS)@
            value = item.get("value", "")
            match = CREDENTIALS_IN_URL.search(value)
            assert match, f"{container['name']}: {item['name']} must come from a secretKeyRef"
            refs = set(re.findall(r"\$\(([A-Z0-9_]+)\)", match.group(0)))
            assert match.group(1).startswith("$(") and match.group(2).startswith("$(") and refs <= backed, (
                f"{container['name']}: {item['name']} has literal credentials")
    text = "\n".join(p.read_text() for p in K8S.rglob("*") if p.is_file())
    for user, password in CREDENTIALS_IN_URL.findall(text):
        assert password.startswith("$("), f"literal credentials in a URL: {user}:***"


@pytest.mark.parametrize("name", BUILDS)
def test_every_setting_the_app_reads_is_provided_to_every_app_container(name):
    resources = built(name)
    config_maps = {n: set(c.get("data", {})) for n, c in by_kind(resources, "ConfigMap").items()}
    required = settings_env_names()
    containers = all_containers(resources)
    assert len(containers) >= 6
    for container in containers:
        provided = {e["name"] for e in container.get("env", [])}
        for source in container.get("envFrom", []):
            ref = source["configMapRef"]["name"]
            assert ref in config_maps, f"{container['name']} reads ConfigMap {ref}, which is not defined"
            provided |= config_maps[ref]
        missing = required - provided
        assert not missing, f"{container['name']} is not given {sorted(missing)}"


def _command(deployment: dict[str, Any]) -> list[str]:
    container = pod_spec(deployment)["containers"][0]
    return container.get("command", []) + container.get("args", [])


@pytest.mark.parametrize("name", BUILDS)
def test_each_role_runs_its_command_with_budgets_and_autoscaling(name):
    resources = built(name)
    deployments = by_kind(resources, "Deployment")
    hpas = by_kind(resources, "HorizontalPodAutoscaler")
    pdbs = by_kind(resources, "PodDisruptionBudget")
    assert _command(deployments["formwright-web"])[:2] == ["uvicorn", "webapp.asgi:app"]
    assert "--timeout-graceful-shutdown" in _command(deployments["formwright-web"])
    assert _command(deployments["formwright-relay"]) == ["formwright", "relay"]
    for kind in integration_kinds():
        assert _command(deployments[f"formwright-worker-{kind}"]) == ["formwright", "workers", "run", kind]
    job = by_kind(resources, "Job")["formwright-migrate"]
    assert pod_spec(job)["containers"][0]["command"] == ["formwright", "database", "upgrade", "--no-prompt"]
    images = {c["image"] for c in all_containers(resources)}
    assert len(images) == 1, f"one image runs every role, got {images}"
    for dname, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items(), dname
        covering = [p for p in pdbs.values() if p["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(covering) == 1, f"{dname} needs exactly one PodDisruptionBudget"
        if dname != "formwright-relay":
            hpa = hpas[dname]
            assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": dname}
    web_metrics = hpas["formwright-web"]["spec"]["metrics"]
    assert {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                         "averageUtilization": 70}}} in web_metrics


def test_production_scales_workers_on_queue_depth():
    hpas = by_kind(built("overlay production"), "HorizontalPodAutoscaler")
    for kind in ("sms", "webhook"):
        types = {m["type"] for m in hpas[f"formwright-worker-{kind}"]["spec"]["metrics"]}
        assert types == {"External", "Resource"}, kind


@pytest.mark.parametrize("name", BUILDS)
def test_datastores_come_from_operators_and_the_app_uses_their_secrets(name):
    resources = built(name)
    assert not by_kind(resources, "StatefulSet"), "PostgreSQL and RabbitMQ come from their operators"
    (database,) = by_kind(resources, "Cluster").values()
    (broker,) = by_kind(resources, "RabbitmqCluster").values()
    for container in all_containers(resources):
        env = {e["name"]: e for e in container["env"]}
        assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": f"{database['metadata']['name']}-app", "key": "uri"}
        for part in ("AMQP_USERNAME", "AMQP_PASSWORD"):
            assert env[part]["valueFrom"]["secretKeyRef"]["name"] == f"{broker['metadata']['name']}-default-user"
        assert f"@{broker['metadata']['name']}:5672/" in env["AMQP_URL"]["value"]


def test_production_runs_three_of_each_datastore_in_its_namespace():
    resources = built("overlay production")
    assert by_kind(resources, "Cluster")["formwright-db"]["spec"]["instances"] == 3
    assert by_kind(resources, "RabbitmqCluster")["formwright-mq"]["spec"]["replicas"] == 3
    assert {r["metadata"].get("namespace") for r in resources if r["kind"] != "Namespace"} == {"formwright"}
    images = {c["image"] for c in all_containers(resources)}
    assert all(":" in i and not i.endswith(":latest") for i in images), images


def test_the_ingress_reaches_the_web_service():
    for name in BUILDS:
        resources = built(name)
        services = by_kind(resources, "Service")
        deployments = by_kind(resources, "Deployment")
        for ingress in by_kind(resources, "Ingress").values():
            for rule in ingress["spec"]["rules"]:
                for path in rule["http"]["paths"]:
                    backend = path["backend"]["service"]
                    service = services[backend["name"]]
                    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
        web_labels = deployments["formwright-web"]["spec"]["template"]["metadata"]["labels"]
        assert services["formwright-web"]["spec"]["selector"].items() <= web_labels.items()


# ---- docker compose -------------------------------------------------------------------------------

@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def compose_schema() -> dict[str, Any]:
    import json

    text = files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    return json.loads(text)


def test_compose_file_validates_against_the_compose_spec():
    validator = jsonschema.Draft202012Validator(compose_schema())
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
    broken = {**compose(), "services": {"web": {"image": "x", "depends_on": {"db": {"condition": "healthy"}}}}}
    assert list(validator.iter_errors(broken)), "the schema check must be able to fail"


APP_SERVICES = {"migrate", "web", "relay"}


def test_compose_services_wait_for_healthy_datastores_and_migrations():
    services = compose()["services"]
    kinds = integration_kinds()
    assert set(services) == {"postgres", "rabbitmq", *APP_SERVICES, *(f"worker-{k}" for k in kinds)}
    for store, volume_path in (("postgres", "/var/lib/postgresql/data"), ("rabbitmq", "/var/lib/rabbitmq")):
        assert services[store]["healthcheck"]["test"], store
        volume = next(v.split(":")[0] for v in services[store]["volumes"] if v.endswith(volume_path))
        assert volume in compose()["volumes"], f"{store} data must be on a named volume"
    assert services["migrate"]["command"] == ["formwright", "database", "upgrade", "--no-prompt"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["web"]["command"][:2] == ["uvicorn", "webapp.asgi:app"]
    assert services["relay"]["command"] == ["formwright", "relay"]
    for name in ["web", "relay", *(f"worker-{k}" for k in kinds)]:
        assert services[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"}, "rabbitmq": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"}}, name
        assert services[name]["healthcheck"]["test"], name
    for kind in kinds:
        assert services[f"worker-{kind}"]["command"] == ["formwright", "workers", "run", kind]
    assert int(str(services["web"]["environment"]["WEB_CONCURRENCY"]).split(":-")[-1].rstrip("}")) > 1


def test_compose_logs_rotate_and_app_containers_are_locked_down():
    for name, service in compose()["services"].items():
        logging = service["logging"]
        assert logging["driver"] == "json-file", name
        assert {"max-size", "max-file"} <= set(logging["options"]), name
        if name in {"postgres", "rabbitmq"}:
            continue
        assert service["read_only"] is True and "/tmp" in service["tmpfs"], name
        assert not service["user"].startswith("0"), name
        assert service["cap_drop"] == ["ALL"], name
        assert service["build"]["dockerfile"] == "deploy/Dockerfile", name


def test_compose_gives_every_setting_and_takes_secrets_only_from_the_environment():
    required = settings_env_names()
    for name, service in compose()["services"].items():
        if name in {"postgres", "rabbitmq"}:
            continue
        environment = service["environment"]
        missing = required - set(environment)
        assert not missing, f"{name} is not given {sorted(missing)}"
        for key, value in environment.items():
            if SECRET_NAME.search(key):
                value = re.sub(r"\$\{[^}]*\}", "${}", str(value))  # ${NAME:?message} -> ${}
                for _user, password in CREDENTIALS_IN_URL.findall(value) or [("", value)]:
                    assert password.startswith("${"), f"{name}: {key} must be interpolated from .env"
        assert environment["EMBEDDED_DELIVERY"] == "false", "the workers deliver, not the web process"


# ---- .env.example, Dockerfile, alerts ---------------------------------------------------------------

def test_env_example_documents_every_variable():
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))
    compose_text = (ROOT / "docker-compose.yml").read_text()
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", compose_text))
    missing = (settings_env_names() | interpolated | SERVER_ONLY) - documented
    assert not missing, f".env.example does not document {sorted(missing)}"
    for line in text.splitlines():
        if SECRET_NAME.search(line.split("=")[0]) and "=" in line and not line.startswith("#"):
            assert line.split("=", 1)[1] == "", f"no secret values in .env.example: {line.split('=')[0]}"
    assert parse_env_file(K8S / "base" / "config.env")  # the same KEY=value format, comments allowed


def test_dockerfile_is_multi_stage_slim_non_root_and_bakes_in_no_secrets():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in text.splitlines() if line and not line.startswith("#")
                    and not line.startswith((" ", "\t"))]
    stages = [rest for word, *rest in instructions if word == "FROM"]
    assert len(stages) >= 2, "multi-stage"
    assert all("slim" in rest[0] for rest in stages)
    users = [rest[0] for word, *rest in instructions if word == "USER"]
    assert users and users[-1].split(":")[0].isdigit() and users[-1].split(":")[0] != "0"
    copies = " ".join(rest[0] for word, *rest in instructions if word in {"COPY", "ADD"})
    assert ".env" not in copies and "COPY . " not in text
    for word, *rest in instructions:
        if word in {"ENV", "ARG"}:
            names = re.findall(r"([A-Z_][A-Z0-9_]*)=", rest[0]) or [rest[0].split("=")[0]]
            assert not any(SECRET_NAME.search(n) for n in names), f"{word} {rest[0]}"
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".git", ".venv", "var", "tests"} <= ignored


def test_alert_rules_are_well_formed_and_watch_metrics_that_exist():
    rules = yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text())
    exported = {m for m in vars(observability).values() if isinstance(m, str) and m.startswith("formwright_")}
    for metric in vars(observability).values():
        if hasattr(metric, "_name") and hasattr(metric, "_type"):
            suffix = {"counter": "_total", "histogram": "_bucket"}.get(metric._type, "")
            exported.add(metric._name + suffix)
    names = set()
    for group in rules["groups"]:
        for rule in group["rules"]:
            names.add(rule["alert"])
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert rule["annotations"]["summary"] and rule["expr"] and rule["for"], rule["alert"]
            assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
            for metric in set(re.findall(r"\b(formwright_[a-z_]+)", rule["expr"])):
                assert metric in exported, f"{rule['alert']} watches {metric}, which nothing exports"
    assert {"FormwrightOutboxStale", "FormwrightDeadLetters", "FormwrightHigh5xxRate", "FormwrightWorkerDown"} <= names
