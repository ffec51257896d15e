"""Prepare a rootfs with the real ``bootstrap init`` and run its control plane with the kubelet stand-in.

Every port moves to a free one (API server, controller-manager, scheduler, etcd client/peer/metrics,
kubelet healthz), so tests run in parallel and never meet a real service on this machine.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import random
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.standin.kubelet import KubeletStandin, Scenario
from tests.tools import tool

NODE = "cp1"
ADDRESS = "127.0.0.1"
MANIFESTS = "etc/kubernetes/manifests"
# system:masters: usable before init's upload-config binds admin.conf's group to cluster-admin.
ADMIN_CONF = "etc/kubernetes/super-admin.conf"


@dataclass(frozen=True)
class Ports:
    apiserver: int
    controller_manager: int
    scheduler: int
    etcd_client: int
    etcd_peer: int
    etcd_metrics: int
    kubelet_healthz: int


# Test ports come from below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by
# default): a port the kernel handed out and the test released can be taken by any outgoing
# connection on the machine before the component binds it, which parallel workers made likely
# (preflight then fails "Port ... is in use"). Each xdist worker draws from its own block.
_PORT_BLOCK = 2000
_FIRST_PORT = 10000
_port_cursor = itertools.count(random.randrange(_PORT_BLOCK))
# Never handed out: the control plane's default ports (kubelet 10250, its healthz 10248, kube-proxy
# 10249/10256, controller-manager 10257, scheduler 10259), which a test that keeps the defaults
# checks at preflight on every interface; a component of another worker's test there made that
# test's preflight fail with "Port 10250 is in use".
_DEFAULT_PORTS = frozenset(range(10248, 10260))


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker[2:]) if worker[2:].isdigit() else 0


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that were free just now, from this worker's block (each bound to check)."""
    base = _FIRST_PORT + _worker_index() * _PORT_BLOCK
    ports: list[int] = []
    for _ in range(_PORT_BLOCK):
        port = base + next(_port_cursor) % _PORT_BLOCK
        if port in _DEFAULT_PORTS:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((ADDRESS, port))
            except OSError:
                continue  # in use: take the next
        ports.append(port)
        if len(ports) == n:
            return ports
    raise RuntimeError(f"no {n} free ports in {base}-{base + _PORT_BLOCK - 1}")


def allocate_ports() -> Ports:
    return Ports(*free_ports(7))


def init_config(ports: Ports, node: str = NODE, address: str = ADDRESS) -> str:
    """A kubeadm v1beta4 config + KubeletConfiguration that puts every component on ``ports``."""
    return f"""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: {address}
  bindPort: {ports.apiserver}
nodeRegistration:
  name: {node}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
encryptionAlgorithm: ECDSA-P256
controllerManager:
  extraArgs:
  - name: secure-port
    value: "{ports.controller_manager}"
scheduler:
  extraArgs:
  - name: secure-port
    value: "{ports.scheduler}"
etcd:
  local:
    extraArgs:
    - name: listen-metrics-urls
      value: http://{address}:{ports.etcd_metrics}
    - name: listen-client-urls
      value: https://{address}:{ports.etcd_client}
    - name: advertise-client-urls
      value: https://{address}:{ports.etcd_client}
    - name: listen-peer-urls
      value: https://{address}:{ports.etcd_peer}
    - name: initial-advertise-peer-urls
      value: https://{address}:{ports.etcd_peer}
    - name: initial-cluster
      value: {node}=https://{address}:{ports.etcd_peer}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
healthzBindAddress: {address}
healthzPort: {ports.kubelet_healthz}
"""


def add_endpoint_and_certificate_key(config: Path, certificate_key: str) -> None:
    """Edit an :func:`init_config` file for an HA-ready first node: ``controlPlaneEndpoint`` is its own
    API server (without one no control-plane node may join) and ``certificateKey`` is given, so
    ``--upload-certs`` uploads with a key the test knows."""
    text = config.read_text()
    port = re.search(r"bindPort: (\d+)", text)
    assert port is not None, f"{config}: no bindPort"
    text = text.replace(
        "kind: ClusterConfiguration\n",
        f"kind: ClusterConfiguration\ncontrolPlaneEndpoint: {ADDRESS}:{port[1]}\n",
    )
    config.write_text(
        text.replace("nodeRegistration:", f"certificateKey: {certificate_key}\nnodeRegistration:", 1)
    )


@functools.cache
def _known_phases() -> str:
    return subprocess.run(
        [tool("bootstrap"), "init", "--help"], capture_output=True, text=True, check=True
    ).stdout


def skip_phases() -> str:
    """The phases that need a running control plane (the kubelet runs later, in the test) and preflight."""
    help_text = _known_phases()
    wanted = (
        "wait-control-plane",
        "upload-config",
        "mark-control-plane",
        "bootstrap-token",
        "addon",
        "show-join-command",
        "preflight",
    )
    return ",".join(p for p in wanted if f"\n  {p} " in help_text)


def prepare_rootfs(
    rootfs: Path, *, ports: Ports | None = None, node: str = NODE, extra: tuple[str, ...] = ()
) -> Ports:
    """``bootstrap init`` through the CLI into ``rootfs``: PKI, kubeconfigs, manifests, kubelet config."""
    ports = ports or allocate_ports()
    rootfs.mkdir(parents=True, exist_ok=True)
    config = rootfs.parent / f"{rootfs.name}-kubeadm.yaml"
    config.write_text(init_config(ports, node))
    args = [tool("bootstrap"), "init", "--config", str(config), "--rootfs", str(rootfs)]
    args += ["--node-name", node, "--advertise-address", ADDRESS]
    skip = skip_phases()
    if skip:
        args += ["--skip-phases", skip]
    proc = subprocess.run([*args, *extra], capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"bootstrap init failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return ports


@contextlib.contextmanager
def running_control_plane(
    rootfs: Path,
    scenarios: dict[str, Scenario] | None = None,
    *,
    rescan_interval: float = 0.1,
    apiserver_store: object | None = None,
    kubelet_config: Path | None = None,
) -> Iterator[KubeletStandin]:
    """The kubelet stand-in running ``rootfs``'s static pods (the API comes up when it runs the manifest)."""
    kubelet = KubeletStandin(
        rootfs,
        kubelet_config=kubelet_config,
        scenarios=scenarios,
        rescan_interval=rescan_interval,
        apiserver_store=apiserver_store,
    )
    kubelet.start()
    try:
        yield kubelet
    finally:
        kubelet.stop()


def admin_client(rootfs: Path) -> Any:
    """The official client with ``super-admin.conf`` (TLS verified): a cluster administrator."""
    from kubernetes import client, config

    cfg = client.Configuration()
    cfg.retries = False
    return config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(rootfs / ADMIN_CONF), client_configuration=cfg, persist_config=False
    )


@contextlib.contextmanager
def kubelet_once_configured(rootfs: Path) -> Iterator[dict[str, Any]]:
    """Start the kubelet stand-in when kubelet-start has written its config and its flags (the real
    kubelet is restarted after both: started between the two, the stand-in would take the host name
    for the node name, not --hostname-override); stop it at the end."""
    state: dict[str, Any] = {}
    stop = threading.Event()
    written = [rootfs / "var/lib/kubelet/config.yaml", rootfs / "var/lib/kubelet/kubeadm-flags.env"]

    def run() -> None:
        while not all(path.exists() for path in written):
            if stop.wait(0.05):
                return
        with running_control_plane(rootfs) as kubelet:
            state["kubelet"] = kubelet
            stop.wait()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join(timeout=30)


def bootstrap_command(rootfs: Path, config: Path, *command: str, settle: str = "1s") -> list[str]:
    """``bootstrap <command> --config C --rootfs R --settle S -o json``, the way the tests run the CLI."""
    return [
        tool("bootstrap"),
        *command,
        "--config",
        str(config),
        "--rootfs",
        str(rootfs),
        "--settle",
        settle,
        "-o",
        "json",
    ]
