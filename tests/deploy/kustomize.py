"""Just enough of `kustomize build` to check our manifests without the kustomize binary.

Supports what deploy/k8s uses: resources (files and directories), namespace, labels (metadata
only), images, configMapGenerator (envs, literals, behavior merge) and strategic-merge patches
given by path. Anything else in a kustomization.yaml is refused, so the test cannot silently
ignore a feature it does not understand. Generated ConfigMaps keep their plain names (kustomize
would add a content hash and rewrite the references to match).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "configMapGenerator", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PriorityClass"}


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def parse_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines; blank lines and # comments ignored (kubectl's --from-env-file rules)."""
    data: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key:
            raise ValueError(f"{path}:{number}: not KEY=value: {line!r}")
        data[key] = value
    return data


def strategic_merge(base: Any, patch: Any) -> Any:
    """Maps merge recursively; lists of named maps (containers, env, ports) merge by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = strategic_merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if (isinstance(base, list) and isinstance(patch, list) and patch
            and all(isinstance(i, dict) and "name" in i for i in base + patch)):
        merged = {item["name"]: item for item in base}
        for item in patch:
            merged[item["name"]] = strategic_merge(merged[item["name"]], item) if item["name"] in merged else item
        return list(merged.values())
    return copy.deepcopy(patch)


def _key(resource: dict[str, Any]) -> tuple[str, str]:
    return resource["kind"], resource["metadata"]["name"]


def build(directory: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise ValueError(f"{directory}/kustomization.yaml uses fields this test does not model: {sorted(unknown)}")
    resources: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        target = (directory / entry).resolve()
        resources += build(target) if target.is_dir() else load_docs(target)
    by_key = {_key(r): r for r in resources}
    for generator in kustomization.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for env_file in generator.get("envs", []):
            data.update(parse_env_file(directory / env_file))
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        name = generator["name"]
        if generator.get("behavior") == "merge":
            existing = by_key[("ConfigMap", name)]
            existing["data"] = {**existing.get("data", {}), **data}
        else:
            config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
            resources.append(config_map)
            by_key[("ConfigMap", name)] = config_map
    for patch_entry in kustomization.get("patches", []):
        for patch in load_docs(directory / patch_entry["path"]):
            key = _key(patch)
            if key not in by_key:
                raise ValueError(f"patch {patch_entry['path']} targets {key}, which is not among the resources")
            merged = strategic_merge(by_key[key], patch)
            resources[resources.index(by_key[key])] = merged
            by_key[key] = merged
    for label_set in kustomization.get("labels", []):
        for resource in resources:
            resource["metadata"].setdefault("labels", {}).update(label_set["pairs"])
    if namespace := kustomization.get("namespace"):
        for resource in resources:
            if resource["kind"] not in CLUSTER_SCOPED:
                resource["metadata"]["namespace"] = namespace
    for image in kustomization.get("images", []):
        for container in all_containers(resources):
            name, _, _tag = container["image"].partition(":")
            if name == image["name"]:
                container["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    return resources


def pod_spec(resource: dict[str, Any]) -> dict[str, Any] | None:
    if resource["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return resource["spec"]["template"]["spec"]
    return None


def all_containers(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for resource in resources:
        spec = pod_spec(resource)
        if spec:
            out += spec.get("initContainers", []) + spec["containers"]
    return out
