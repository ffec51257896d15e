"""A real highly available cluster on one machine: what tests/test_join_ha.py and benchmarks/bench_join.py
build and drive.

Every node is a network namespace of a :class:`tests.netns.Topology` (own loopback, one address on the
test's bridge) with its own rootfs and its own kubelet stand-in; haproxy in the switch namespace is the
``controlPlaneEndpoint`` in front of the control-plane nodes' API servers. The control-plane nodes run
real etcd from the manifest ``bootstrap`` rendered on them, and their API stand-ins keep their objects
in that etcd cluster, so the three API endpoints share one state as real ones do.

``bootstrap`` itself runs as a subprocess inside the node's namespace (``ip netns exec``), exactly as a
user would run it there; the kubelet stand-in of a node is started once ``bootstrap`` has written the
kubelet's files (kubelet-start), as systemd would restart the real kubelet at that point.

Every address is route-proven (``Topology.prove_mesh``, and each command's ``to=``) before anything is
sent to it; :meth:`HaCluster.close` stops every kubelet (and so every etcd and API stand-in) and the
topology deletes the namespaces and kills what is left in them by pid, also when a test failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.netns import Host, LoadBalancer, Topology
from tests.standin.kubelet import KubeletStandin
from tests.test_etcd_manifest import etcd_binary, etcd_version, kubernetes_version_for
from tests.tools import tool, wait_for

LB_PORT = 6443
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
PKI = "etc/kubernetes/pki"
KUBELET_FILES = ("var/lib/kubelet/config.yaml", "var/lib/kubelet/kubeadm-flags.env")
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
COMMAND_TIMEOUT = 180.0
# The node is a directory, not a machine: no kubelet binary, no container runtime, swap maybe on.
HOST_CHECKS = "FileExisting-kubelet,CRI,Swap"
# Short settle: the components are stand-ins whose health does not flap.
SETTLE = ("--settle", "1s")


@dataclass
class Run:
    """One finished ``bootstrap`` command: exit code, the result document (stdout), the human lines
    (stderr) each with the monotonic time it was read, and its wall time."""

    argv: list[str]
    code: int
    stdout: str
    lines: list[tuple[float, str]]
    started: float
    seconds: float

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def doc(self) -> dict[str, Any]:
        try:
            document: dict[str, Any] = json.loads(self.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"no JSON result document ({exc}):\n{self}") from None
        return document

    def phase(self, path: str) -> dict[str, Any]:
        for report in self.doc().get("phases", []):
            if report["path"] == path:
                found: dict[str, Any] = report
                return found
        raise AssertionError(f"no phase {path!r} in the result of {' '.join(self.argv)}:\n{self}")

    def first_line(self, label: str) -> float | None:
        """When the first ``[label]`` line arrived, in seconds after the start (None: never)."""
        for at, line in self.lines:
            if line.startswith(f"[{label}]"):
                return at - self.started
        return None

    def __str__(self) -> str:
        return (
            f"$ bootstrap {' '.join(self.argv)}\nexit {self.code} after {self.seconds:.1f}s\n"
            f"--- stderr:\n{self.stderr[-6000:]}\n--- stdout:\n{self.stdout[-4000:]}"
        )


@dataclass
class Node:
    """One machine: its namespace, its rootfs, its kubelet stand-in while one runs."""

    name: str
    host: Host
    rootfs: Path
    control_plane: bool
    kubelet: KubeletStandin | None = None

    @property
    def address(self) -> str:
        return self.host.address

    def path(self, relative: str) -> Path:
        return self.rootfs / relative.lstrip("/")

    def pki(self, name: str) -> Path:
        return self.rootfs / PKI / name

    @property
    def etcd_url(self) -> str:
        return f"https://{self.address}:{ETCD_CLIENT_PORT}"

    @property
    def peer_url(self) -> str:
        return f"https://{self.address}:{ETCD_PEER_PORT}"


def init_config(node: Node, kubernetes_version: str) -> str:
    return f"""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: {node.address}
nodeRegistration:
  name: {node.name}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {kubernetes_version}
encryptionAlgorithm: ECDSA-P256
"""


def join_config(**timeouts: str) -> str:
    """A JoinConfiguration carrying only ``timeouts`` (the rest comes from the flags, which win)."""
    lines = "".join(f"  {name}: {value}\n" for name, value in timeouts.items())
    return f"apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ntimeouts:\n{lines}"


@dataclass
class HaCluster:
    """The nodes, the load balancer and the credentials init handed out (see the module docstring).

    Node names: ``cp1``.. for the control-plane nodes, ``w1``.. for workers, in the topology's node
    order (``names``)."""

    topology: Topology
    base: Path
    names: list[str]
    etcd: Path = field(default_factory=lambda: etcd_binary("etcd"))
    nodes: dict[str, Node] = field(default_factory=dict)
    lb: LoadBalancer | None = None
    token: str = ""
    ca_hash: str = ""
    certificate_key: str = field(default_factory=lambda: secrets.token_hex(32))
    kubernetes_version: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=4))

    def __post_init__(self) -> None:
        self.kubernetes_version = kubernetes_version_for(etcd_version(self.etcd))
        for name, host in zip(self.names, self.topology.members, strict=True):
            rootfs = self.base / name / "rootfs"
            rootfs.mkdir(parents=True)
            self.nodes[name] = Node(name, host, rootfs, control_plane=name.startswith("cp"))
        # Nodes, the switch and haproxy may all talk to each other; nothing else is ever proven.
        self.topology.prove_mesh()

    # ---- who is where ----

    def node(self, name: str) -> Node:
        return self.nodes[name]

    @property
    def control_planes(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.control_plane]

    @property
    def endpoint(self) -> str:
        assert self.lb is not None
        return f"{self.lb.address}:{self.lb.port}"

    def everywhere(self) -> list[str]:
        """Every address of the topology (a command may reach any node and the balancer)."""
        return [host.address for host in self.topology.hosts]

    # ---- the load balancer ----

    def start_load_balancer(self, backends: Sequence[str]) -> LoadBalancer:
        """haproxy at the switch's address:6443 in front of the API servers of ``backends``."""
        assert self.topology.switch is not None
        servers = {name: (self.nodes[name].address, LB_PORT) for name in backends}
        self.lb = self.topology.load_balancer(self.topology.switch, LB_PORT, servers, self.base / "haproxy")
        return self.lb

    # ---- running bootstrap on a node ----

    def bootstrap(self, node: Node, *args: str, timeout: float = COMMAND_TIMEOUT) -> Run:
        """``bootstrap ARGS`` inside ``node``'s namespace, to completion (killed after ``timeout``)."""
        argv = [str(a) for a in args]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ETCDCTL_", "KUBECONFIG"))}
        command = ["ip", "netns", "exec", node.host.netns, tool("bootstrap"), *argv]
        for address in self.everywhere():
            self.topology.prove_route(node.host, address)
        started = time.monotonic()
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        lines: list[tuple[float, str]] = []

        def read_stderr() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.append((time.monotonic(), line.rstrip("\n")))

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        try:
            assert proc.stdout is not None
            stdout = _read_all(proc, timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            reader.join(timeout=10)
        return Run(argv, proc.returncode, stdout, lines, started, time.monotonic() - started)

    def bootstrap_async(self, node: Node, *args: str, timeout: float = COMMAND_TIMEOUT) -> Future[Run]:
        return self._pool.submit(self.bootstrap, node, *args, timeout=timeout)

    # ---- kubelets ----

    def start_kubelet(self, node: Node) -> KubeletStandin:
        """The node's kubelet stand-in (a new one: a kubelet restarted, or the node rebooted)."""
        assert node.kubelet is None, f"{node.name}: a kubelet already runs"
        kubelet = KubeletStandin(
            node.rootfs,
            netns=node.host.netns,
            binaries={"etcd": self.etcd},
            rescan_interval=0.1,
            # The API stand-in of a control-plane node keeps its objects in the node's etcd member.
            api_store="etcd" if node.control_plane else "memory",
        )
        kubelet.start()
        node.kubelet = kubelet
        return kubelet

    def stop_kubelet(self, node: Node) -> None:
        """The node goes down: its kubelet, and with it the etcd and the API stand-in it ran."""
        if node.kubelet is not None:
            node.kubelet.stop()
            node.kubelet = None

    def kubelet_files_written(self, node: Node) -> bool:
        return all(node.path(f).exists() for f in KUBELET_FILES)

    def with_kubelet(self, node: Node, command: Future[Run], timeout: float = COMMAND_TIMEOUT) -> Run:
        """Wait for ``command``; start the node's kubelet once it has written the kubelet's files."""
        if node.kubelet is None:
            wait_for(
                lambda: self.kubelet_files_written(node) or command.done(),
                timeout,
                what=f"{node.name}: kubelet-start to write the kubelet's files",
            )
            if self.kubelet_files_written(node):
                self.start_kubelet(node)
        return command.result(timeout=timeout + 30)

    # ---- init and join ----

    def init(self, node: Node) -> Run:
        config = self.base / node.name / "kubeadm.yaml"
        config.write_text(init_config(node, self.kubernetes_version))
        command = self.bootstrap_async(
            node,
            "init",
            "--config",
            str(config),
            "--rootfs",
            str(node.rootfs),
            "--control-plane-endpoint",
            self.endpoint,
            "--upload-certs",
            "--certificate-key",
            self.certificate_key,
            "--skip-phases",
            "preflight",
            *SETTLE,
            "-o",
            "json",
        )
        run = self.with_kubelet(node, command)
        if run.code == 0:
            details = run.phase("show-join-command")["details"]
            self.token = str(details["token"])
            self.ca_hash = str(details["caCertHashes"][0])
        return run

    def join_args(
        self,
        node: Node,
        *extra: str,
        token: str | None = None,
        ca_hash: str | None = None,
        certificate_key: str | None = None,
        endpoint: str | None = None,
        ignore: str = HOST_CHECKS,
    ) -> list[str]:
        """The join command line a user would type on ``node`` (control-plane nodes with their key)."""
        args = [
            "join",
            endpoint or self.endpoint,
            "--token",
            token or self.token,
            "--discovery-token-ca-cert-hash",
            ca_hash or self.ca_hash,
            "--node-name",
            node.name,
            "--rootfs",
            str(node.rootfs),
            "--ignore-preflight-errors",
            ignore,
            *SETTLE,
            "-o",
            "json",
        ]
        if node.control_plane:
            args += [
                "--control-plane",
                "--certificate-key",
                certificate_key or self.certificate_key,
                "--apiserver-advertise-address",
                node.address,
            ]
        return [*args, *extra]

    def join(self, node: Node, *extra: str, timeout: float = COMMAND_TIMEOUT, **kwargs: str) -> Run:
        """Run a join on ``node`` (its kubelet started when kubelet-start has written its files)."""
        command = self.bootstrap_async(node, *self.join_args(node, *extra, **kwargs), timeout=timeout)
        return self.with_kubelet(node, command, timeout)

    # ---- etcd ----

    def etcdctl(
        self, sender: Node, *args: str, via: Sequence[Node] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """etcdctl in ``sender``'s namespace with its etcd client certificate, against ``via``."""
        targets = list(via or [sender])
        return etcdctl_in(
            self.topology,
            sender.host,
            sender.rootfs / PKI,
            [n.etcd_url for n in targets],
            *args,
            to=[n.address for n in targets],
        )

    def members(self, sender: Node, via: Sequence[Node] | None = None) -> list[dict[str, Any]]:
        """``etcdctl member list`` (JSON): each member's name, peerURLs, isLearner, ID."""
        result = self.etcdctl(sender, "member", "list", "-w", "json", via=via)
        assert result.returncode == 0, f"etcdctl member list: {result.stderr}{self.etcd_logs()}"
        members: list[dict[str, Any]] = json.loads(result.stdout)["members"]
        return members

    def wait_registered(self, node: Node, timeout: float = 60.0) -> None:
        """Wait until ``node``'s kubelet has registered its Node (as system:node:<name>, after its TLS
        bootstrap)."""
        wait_for(
            lambda: node.kubelet is not None and node.kubelet.node_uid is not None,
            timeout,
            what=f"{node.name}'s kubelet to register its Node",
        )

    def etcd_healthy(self, node: Node) -> bool:
        return self.etcdctl(node, "endpoint", "health").returncode == 0

    def etcd_logs(self, lines: int = 15) -> str:
        tails = []
        for node in self.control_planes:
            process = node.kubelet.process("etcd") if node.kubelet is not None else None
            tails.append(
                f"\n--- etcd on {node.name}:\n{process.log_tail(lines) if process else '(not running)'}"
            )
        return "".join(tails)

    # ---- the API, as a user on a node ----

    @contextlib.contextmanager
    def api(self, sender: Node, kubeconfig: Node | None = None, server: str | None = None) -> Iterator[Any]:
        """The official client from ``sender``'s namespace with ``kubeconfig``'s admin.conf (default:
        the sender's own), through the load balancer or ``server`` (https://address:port)."""
        from kubernetes import client, config

        owner = kubeconfig or sender
        settings = client.Configuration()
        settings.retries = False
        target = server or f"https://{self.endpoint}"
        address = target.removeprefix("https://").rsplit(":", 1)[0]
        with self.topology.inside(sender.host, address):
            api = config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=str(owner.path("etc/kubernetes/admin.conf")),
                client_configuration=settings,
                persist_config=False,
            )
            api.configuration.host = target
            try:
                yield api
            finally:
                api.close()

    # ---- teardown ----

    def close(self) -> None:
        """Stop every kubelet (its etcd and API stand-in with it); the topology does the rest.

        Workers first, then every control-plane node at once, their etcd killed first: stopped one
        by one, the last members would lose quorum while their API stand-ins still had requests
        waiting on etcd, each until its timeout (a dead etcd refuses at once instead)."""
        t = time.monotonic()
        for node in self.nodes.values():
            if not node.control_plane:
                with contextlib.suppress(Exception):
                    self.stop_kubelet(node)
        planes = [n for n in self.control_planes if n.kubelet is not None]
        for node in planes:
            process = node.kubelet.process("etcd") if node.kubelet is not None else None
            if process is not None and process.pid is not None and process.exit_code() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
        if planes:
            with ThreadPoolExecutor(max_workers=len(planes)) as stopping:
                for node in planes:
                    stopping.submit(self.stop_kubelet, node)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.timings["kubelets stopped"] = time.monotonic() - t


def _read_all(proc: subprocess.Popen[str], timeout: float) -> str:
    """All of ``proc``'s stdout, killing it after ``timeout``."""
    assert proc.stdout is not None
    chunks: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        chunks.append(proc.stdout.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        reader.join(timeout=10)
        raise AssertionError(
            f"bootstrap {' '.join(map(str, proc.args))} still ran after {timeout}s"
        ) from None
    reader.join(timeout=10)
    return "".join(chunks)


def etcdctl_in(
    topology: Topology, host: Host, pki: Path, endpoints: Sequence[str], *args: str, to: Sequence[str]
) -> subprocess.CompletedProcess[str]:
    """etcdctl in ``host``'s namespace with the apiserver-etcd-client cert under ``pki``, against
    ``endpoints`` (whose addresses are ``to``); ETCDCTL_* settings of this process are not inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    return topology.run(
        host,
        [
            str(etcd_binary("etcdctl")),
            "--endpoints=" + ",".join(endpoints),
            f"--cacert={pki / 'etcd/ca.crt'}",
            f"--cert={pki / 'apiserver-etcd-client.crt'}",
            f"--key={pki / 'apiserver-etcd-client.key'}",
            "--dial-timeout=2s",
            "--command-timeout=5s",
            *args,
        ],
        to=to,
        env=env,
    )
