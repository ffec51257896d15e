"""The configuration an upgrade starts from and the one it goes to.

Stored: the cluster's ``kube-system/kubeadm-config`` ConfigMap (its ClusterConfiguration), read
through :mod:`bootstrap.cluster`; when the API cannot be reached, the ``--config`` file stands in.
Wanted: the ``--config`` file when given, else the stored configuration; ``VERSION`` (the argument)
sets its kubernetesVersion, and a file that names none keeps the version running now. The node's own
settings the ConfigMap does not hold (name, advertise address, port) come from what runs on it: the
kube-apiserver manifest and the kubelet's flags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bootstrap.cluster.apierror import ApiError
from bootstrap.config import Config, dump_cluster_configuration, load_config, load_config_text
from bootstrap.errors import PhaseError
from bootstrap.host.kubelet import hostname_override
from bootstrap.upgrade import podfields

NAMESPACE = "kube-system"
CONFIG_MAP = "kubeadm-config"
CONFIG_KEY = "ClusterConfiguration"
STORED_NAME = f"{NAMESPACE}/{CONFIG_MAP}"


@dataclass
class Sources:
    """Both configurations, where the stored one came from, and the kubelets' versions by node."""

    stored: Config | None
    stored_from: str
    wanted: Config
    kubelets: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _read(path: Path) -> dict[str, Any]:
    try:
        return podfields.parse(path.read_text())
    except OSError:
        return {}


def manifest_image_version(path: Path) -> str | None:
    """The tag of the image the static pod at ``path`` runs (``v1.33.4``), if it reads as a version."""
    image = podfields.image(_read(path))
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    return tag if re.fullmatch(r"v\d+\.\d+\.\d+\S*", tag) else None


def node_overrides(apiserver_manifest: Path, kubelet_flags: Path) -> dict[str, object]:
    """This node's settings as running now: the API server's address and port, the kubelet's name."""
    flags = podfields.flags(_read(apiserver_manifest))
    overrides: dict[str, object] = {}
    if flags.get("advertise-address"):
        overrides["apiserver-advertise-address"] = flags["advertise-address"]
    if flags.get("secure-port", "").isdigit():
        overrides["apiserver-bind-port"] = int(flags["secure-port"])
    node_name = hostname_override(kubelet_flags)
    if node_name:
        overrides["node-name"] = node_name
    return overrides


def _documents(config_file: Path) -> list[dict[str, Any]]:
    try:
        docs = list(yaml.load_all(config_file.read_text(), Loader=podfields.LOADER))
    except (OSError, yaml.YAMLError):
        return []  # the loader reports the file's problem with its own message
    return [d for d in docs if isinstance(d, dict)]


def names_version(config_file: Path) -> bool:
    """Whether ``config_file``'s ClusterConfiguration sets kubernetesVersion itself."""
    return any(
        d.get("kind") == "ClusterConfiguration" and d.get("kubernetesVersion")
        for d in _documents(config_file)
    )


def describes_node(config_file: Path) -> bool:
    """Whether ``config_file`` has an InitConfiguration (this node's name, address and port)."""
    return any(d.get("kind") == "InitConfiguration" for d in _documents(config_file))


def read_stored(api: Any, overrides: dict[str, object]) -> Config | None:
    """The ConfigMap's ClusterConfiguration with this node's settings; None when there is none."""
    config_map = api.read("ConfigMap", NAMESPACE, CONFIG_MAP)
    text = ((config_map or {}).get("data") or {}).get(CONFIG_KEY)
    if not text:
        return None
    return load_config_text(str(text), STORED_NAME, overrides)


def read_kubelet_versions(api: Any) -> dict[str, str]:
    return {
        str(node.get("metadata", {}).get("name")): str(
            (node.get("status", {}).get("nodeInfo") or {}).get("kubeletVersion", "")
        )
        for node in api.list_nodes()
    }


def load_sources(
    config_file: Path | None,
    version: str | None,
    current_version: str | None,
    api_factory: Any,
    overrides: dict[str, object],
) -> Sources:
    """The stored and wanted configurations (see the module docstring).

    ``api_factory`` builds the cluster client (or raises :class:`ApiError`); ``overrides`` are this
    node's settings; ``current_version`` is what the node runs (the API server image's tag)."""
    stored: Config | None = None
    stored_from = STORED_NAME
    kubelets: dict[str, str] = {}
    warnings: list[str] = []
    error: ApiError | None = None
    try:
        api = api_factory()
    except ApiError as exc:
        api, error = None, exc
    if api is not None:
        try:
            stored = read_stored(api, overrides)
            kubelets = read_kubelet_versions(api)
            error = None
        except ApiError as exc:
            error = exc
        finally:
            api.close()
    if stored is None:
        if config_file is None:
            why = f"cannot read it: {error}" if error is not None else "it holds no ClusterConfiguration"
            raise PhaseError(f"no stored configuration: {STORED_NAME}: {why}; pass --config")
        reason = str(error) if error is not None else "no ClusterConfiguration in it"
        warnings.append(
            f"{STORED_NAME} not read ({reason}); comparing with --config {config_file} instead, "
            "without the kubelet skew rules (the nodes' kubelet versions are in the API)"
        )
        stored_from = str(config_file)
    elif error is not None:
        warnings.append(f"kubelet versions not read ({error}); the kubelet skew rules were not checked")
    keep = current_version or (stored.kubernetes_version if stored is not None else None)
    wanted_version = version or (None if config_file is not None and names_version(config_file) else keep)
    wanted_overrides = {**overrides, "kubernetes-version": wanted_version} if wanted_version else overrides
    if config_file is not None:
        # A file with an InitConfiguration describes this node itself; one without takes the node's
        # settings from what runs on it, as the stored configuration does.
        node = {} if describes_node(config_file) else overrides
        file_overrides = {**node, "kubernetes-version": wanted_version} if wanted_version else node
        wanted = load_config(config_file, file_overrides)
        if stored is None:
            stored = load_config(config_file, {**node, "kubernetes-version": keep} if keep else node)
    else:
        assert stored is not None
        wanted = load_config_text(dump_cluster_configuration(stored), STORED_NAME, wanted_overrides)
    return Sources(stored, stored_from, wanted, kubelets, warnings)


def store_config(api: Any, cfg: Config) -> bool:
    """Write ``cfg``'s ClusterConfiguration into the ConfigMap; False when it already held it."""
    text = dump_cluster_configuration(cfg)
    config_map = api.read("ConfigMap", NAMESPACE, CONFIG_MAP)
    if config_map is None:
        raise PhaseError(f"{STORED_NAME} does not exist; cannot record the new configuration")
    data = config_map.setdefault("data", {}) or {}
    if data.get(CONFIG_KEY) == text:
        return False
    data[CONFIG_KEY] = text
    config_map["data"] = data
    api.replace("ConfigMap", NAMESPACE, CONFIG_MAP, config_map)
    return True
