"""A control plane made by the real `bootstrap init` and run by the kubelet and API server stand-ins,
for the upgrade tests and the upgrade benchmark: init as a subprocess, exactly as a user runs it."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.standin.harness import (
    NODE,
    admin_client,
    allocate_ports,
    bootstrap_command,
    init_config,
    kubelet_once_configured,
)

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
MANIFESTS = "etc/kubernetes/manifests"


@dataclass
class Cluster:
    rootfs: Path
    config: Path
    config_text: str

    def manifest(self, component: str) -> Path:
        return self.rootfs / MANIFESTS / f"{component}.yaml"

    def write_config(self, name: str, text: str) -> Path:
        path = self.config.parent / name
        path.write_text(text)
        return path

    def upgrade(
        self,
        *args: str,
        config: Path | None = None,
        stored: bool = False,
        timeout: str = "60s",
        settle: str = "1s",
    ) -> tuple[int, dict[str, Any], str]:
        """``bootstrap upgrade apply <args> --yes -o json`` with ``--config`` (``config``, else the init
        config), or with none when ``stored`` (the cluster's kubeadm-config is the configuration); (exit
        code, document, stderr)."""
        command = bootstrap_command(self.rootfs, config or self.config, "upgrade", "apply", settle=settle)
        if stored:
            at = command.index("--config")
            del command[at : at + 2]
        proc = subprocess.run(
            [*command, "--yes", "--timeout", timeout, *args], capture_output=True, text=True, timeout=300
        )
        doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
        return proc.returncode, doc, proc.stderr

    def mirror(self, component: str) -> Any:
        from kubernetes.client import CoreV1Api

        return CoreV1Api(admin_client(self.rootfs)).read_namespaced_pod(f"{component}-{NODE}", "kube-system")

    def mirror_hash(self, component: str) -> str:
        return str(self.mirror(component).metadata.annotations["kubernetes.io/config.hash"])

    def stored_configuration(self) -> str:
        from kubernetes.client import CoreV1Api

        config_map = CoreV1Api(admin_client(self.rootfs)).read_namespaced_config_map(
            "kubeadm-config", "kube-system"
        )
        return str(config_map.data["ClusterConfiguration"])


def config_text(version: str | None) -> str:
    """The harness's init config (every port free), at ``version``."""
    text = init_config(allocate_ports()) + "failSwapOn: false\n"
    if version is not None:
        text = text.replace(
            "kind: ClusterConfiguration\n", f"kind: ClusterConfiguration\nkubernetesVersion: {version}\n"
        )
    return text


@contextlib.contextmanager
def running_cluster(base: Path, version: str | None) -> Iterator[Cluster]:
    """`bootstrap init` (preflight skipped: a bare rootfs has no kubelet binary) at ``version``, with its
    control plane running until the end of the block."""
    rootfs = base / "rootfs"
    rootfs.mkdir()
    text = config_text(version)
    config = base / "kubeadm.yaml"
    config.write_text(text)
    with kubelet_once_configured(rootfs):
        command = bootstrap_command(rootfs, config, "init", settle="1s")
        proc = subprocess.run(
            [*command, "--timeout", "60s", "--skip-phases", "preflight"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0:
            raise AssertionError(f"bootstrap init failed ({proc.returncode}):\n{proc.stderr}")
        yield Cluster(rootfs, config, text)
