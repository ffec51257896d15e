"""The multi-node harness the HA join tests build on (tests/netns.py), proven without any join code.

* the topology: node namespaces with their own loopback on a private bridge, nothing in the root
  namespace, everything gone after teardown (even when the test failed) and after a crashed run;
* the traffic guard: the test process may reach a bridge address only from a namespace whose route to it
  the kernel showed goes through the test's bridge;
* three real etcd members, each started by its node's kubelet stand-in from the manifest ``bootstrap``
  rendered there, with certificates from ``bootstrap init phase certs`` under one shared CA;
* haproxy in front of several backends, failing over when one dies.

Needs root (network namespaces); the timings of building the topology and starting etcd are printed
(``pytest -rP``) for the suite's time budget.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import netns
from tests.ha_cluster import etcdctl_in
from tests.netns import Host, LoadBalancer, RouteLeaves, Topology
from tests.standin.kubelet import KubeletStandin
from tests.test_etcd_manifest import etcd_binary, etcd_version, kubernetes_version_for
from tests.tools import tool, wait_for

PKI = Path("etc/kubernetes/pki")
# What a control-plane node shares with the others (kubeadm's upload-certs set): the CAs and the
# service-account key pair. Every other certificate is made on the node, for its own address.
SHARED_PKI = (
    "ca.crt",
    "ca.key",
    "front-proxy-ca.crt",
    "front-proxy-ca.key",
    "etcd/ca.crt",
    "etcd/ca.key",
    "sa.key",
    "sa.pub",
)
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
HEALTHY_WITHIN = 30.0


def test_runs_as_root() -> None:
    assert os.geteuid() == 0, "the multi-node harness needs root for network namespaces (CI runs as root)"


# ---- the topology ---------------------------------------------------------------------------------------


@pytest.fixture
def topology() -> Iterator[Topology]:
    with Topology(3) as topo:
        yield topo


def addresses_in(netns_name: str | None) -> dict[str, list[str]]:
    """Device → IPv4 addresses, in a namespace (None: the root one)."""
    prefix = [] if netns_name is None else ["-n", netns_name]
    shown = subprocess.run(["ip", *prefix, "-j", "-4", "addr"], capture_output=True, text=True, check=True)
    return {
        link["ifname"]: [info["local"] for info in link.get("addr_info", [])]
        for link in json.loads(shown.stdout)
    }


def test_each_node_has_its_own_loopback_and_one_address_on_the_bridge(topology: Topology) -> None:
    for i, node in enumerate(topology.members, start=1):
        assert addresses_in(node.netns) == {"lo": ["127.0.0.1"], "eth0": [node.address]}
        assert node.address == str(topology.subnet.network_address + 10 + i)  # type: ignore[union-attr]
    assert topology.switch is not None
    assert addresses_in(topology.switch.netns)["br0"] == [topology.switch.address]


def test_the_root_namespace_gets_no_address_on_the_test_subnet(topology: Topology) -> None:
    assert topology.subnet is not None
    root = [ipaddress.ip_address(a) for addrs in addresses_in(None).values() for a in addrs]
    assert root, "the root namespace has at least its loopback address"
    assert not [a for a in root if a in topology.subnet]


def test_every_node_can_listen_on_the_same_loopback_port(topology: Topology) -> None:
    with contextlib.ExitStack() as stack:
        for node in topology.members:
            with topology.inside(node):
                server = stack.enter_context(socket.socket())
            server.bind(("127.0.0.1", ETCD_CLIENT_PORT))  # would be EADDRINUSE on one shared loopback
            server.listen()


def test_nodes_reach_each_other_over_the_bridge(topology: Topology) -> None:
    n1, n2 = topology.node(1), topology.node(2)
    with topology.inside(n2), socket.socket() as server:
        server.bind((n2.address, 7000))
        server.listen()
        with topology.connect(n1, (n2.address, 7000)) as client:
            peer, _ = server.accept()
            with peer:
                assert peer.getpeername()[0] == n1.address
                assert client.getpeername() == (n2.address, 7000)


# ---- the traffic guard (conftest's audit hook + the route check) ------------------------------------------


@pytest.fixture
def listener(topology: Topology) -> Iterator[tuple[Host, socket.socket]]:
    node = topology.node(2)
    with topology.inside(node), socket.socket() as server:
        server.bind((node.address, 7001))
        server.listen(8)
        yield node, server


def test_a_bridge_address_is_refused_before_its_route_is_proven(
    topology: Topology, listener: tuple[Host, socket.socket]
) -> None:
    node, _ = listener
    with netns.entered(topology.node(1).netns), pytest.raises(ConnectionRefusedError, match="not on this"):
        socket.create_connection((node.address, 7001), timeout=2)


def test_a_proven_bridge_address_is_reachable_from_that_namespace_only(
    topology: Topology, listener: tuple[Host, socket.socket]
) -> None:
    node, _ = listener
    sender = topology.node(1)
    topology.prove_route(sender, node.address)
    with netns.entered(sender.netns), socket.create_connection((node.address, 7001), timeout=2):
        pass
    # The proof is for n1's namespace: from the root namespace (where the prefix would follow the
    # default route off the machine) or from n3, the same address is still refused.
    with pytest.raises(ConnectionRefusedError, match="not on this machine"):
        socket.create_connection((node.address, 7001), timeout=2)
    with netns.entered(topology.node(3).netns), pytest.raises(ConnectionRefusedError, match="not on this"):
        socket.create_connection((node.address, 7001), timeout=2)


def test_the_route_check_stops_at_a_route_that_leaves_the_bridge(topology: Topology) -> None:
    sender, target = topology.node(1), topology.node(2)
    # Something else on the node claims the target's address: the kernel would send it there.
    batch = (
        "link add stray0 type veth peer name stray1\n"
        "link set stray0 up\n"
        "link set stray1 up\n"
        f"route add {target.address}/32 dev stray0\n"
    )
    subprocess.run(["ip", "-n", sender.netns, "-batch", "-"], input=batch, text=True, check=True)
    with pytest.raises(RouteLeaves, match="instead of through eth0"):
        topology.prove_route(sender, target.address)
    with netns.entered(sender.netns), pytest.raises(ConnectionRefusedError, match="not on this machine"):
        socket.create_connection((target.address, 7002), timeout=2)


@pytest.mark.parametrize("address", ["192.0.2.1", "10.0.0.1", "example.invalid"])
def test_the_route_check_refuses_addresses_off_the_test_subnet(topology: Topology, address: str) -> None:
    with pytest.raises(RouteLeaves, match=r"not sending|not an IP address"):
        topology.prove_route(topology.node(1), address)


def test_the_route_check_refuses_a_sender_outside_the_topology(topology: Topology) -> None:
    with pytest.raises(RouteLeaves, match="not a namespace of topology"):
        topology.prove_route("some-other-netns", topology.node(1).address)


def test_a_process_started_in_a_namespace_gets_its_routes_checked_first(topology: Topology) -> None:
    with pytest.raises(RouteLeaves):
        topology.run(topology.node(1), ["true"], to=["192.0.2.1"])
    ran = topology.run(topology.node(1), ["ip", "-j", "route", "get", topology.node(3).address])
    assert json.loads(ran.stdout)[0]["dev"] == "eth0"


# ---- teardown ----------------------------------------------------------------------------------------


def namespace_names() -> set[str]:
    shown = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, check=True)
    return {entry["name"] for entry in json.loads(shown.stdout or "[]")}


def dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_teardown_kills_processes_and_deletes_namespaces_even_when_the_test_fails() -> None:
    topo = Topology(2)
    with pytest.raises(RuntimeError, match="the test failed"), topo:
        sleeper = topo.spawn(topo.node(1), ["sleep", "300"])
        # A process started by something else (as etcd by a kubelet): found in the namespace, killed.
        stray = subprocess.Popen(["ip", "netns", "exec", topo.node(2).netns, "sleep", "300"])
        topo.prove_route(topo.node(1), topo.node(2).address)
        inodes = {host.inode for host in topo.hosts}
        wait_for(lambda: stray.pid in netns._pids_in(topo.node(2).netns), 5, what="the stray process")
        raise RuntimeError("the test failed")
    stray.wait(timeout=5)
    assert dead(sleeper.pid) and stray.returncode == -signal.SIGKILL
    assert not {host.netns for host in topo.hosts} & namespace_names()
    assert not {key for key in netns._proven if key[0] in inodes}, "proofs must go with their namespaces"


def test_leftovers_of_a_crashed_run_are_removed_and_a_live_runs_are_kept(topology: Topology) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    leftover = f"{netns.PREFIX}{gone.pid}-1-n1"
    subprocess.run(["ip", "netns", "add", leftover], check=True)
    orphan = subprocess.Popen(["ip", "netns", "exec", leftover, "sleep", "300"], start_new_session=True)
    try:
        wait_for(lambda: orphan.pid in netns._pids_in(leftover), 5, what="the orphan process")
        removed = netns.remove_leftovers()
        orphan.wait(timeout=5)
        assert leftover in removed and leftover not in namespace_names()
        assert orphan.returncode == -signal.SIGKILL
        # This process is alive: its own topology is not a leftover.
        assert {host.netns for host in topology.hosts} <= namespace_names()
    finally:
        with contextlib.suppress(ProcessLookupError):
            orphan.kill()
        subprocess.run(["ip", "netns", "delete", leftover], capture_output=True)


# ---- haproxy ----------------------------------------------------------------------------------------------

LB_PORT = 6443
BACKEND_PORT = 7443
BACKEND = """\
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(64)
while True:
    conn, _ = server.accept()
    conn.sendall(sys.argv[3].encode() + b"\\n")
    conn.close()
"""


def answer_through(topology: Topology, sender: Host, lb: LoadBalancer) -> str:
    with topology.connect(sender, (lb.address, lb.port)) as conn:
        conn.settimeout(3)
        data = b""
        while chunk := conn.recv(1024):
            data += chunk
    return data.decode().strip()


def test_haproxy_forwards_to_live_backends_and_fails_over_when_one_dies(
    topology: Topology, tmp_path: Path
) -> None:
    assert topology.switch is not None
    names = {f"n{i}": node for i, node in enumerate(topology.members, start=1)}
    backends = {
        name: topology.spawn(node, [sys.executable, "-c", BACKEND, node.address, str(BACKEND_PORT), name])
        for name, node in names.items()
    }
    lb = topology.load_balancer(
        topology.switch,
        LB_PORT,
        {name: (node.address, BACKEND_PORT) for name, node in names.items()},
        tmp_path,
    )
    lb.wait_for(dict.fromkeys(names, "UP"))

    client = topology.node(1)  # a node reaching the control-plane endpoint across the bridge
    answers = [answer_through(topology, client, lb) for _ in range(6)]
    assert set(answers) == set(names), f"round robin over three live backends: {answers}"

    topology.kill(backends["n2"])
    after = [answer_through(topology, client, lb) for _ in range(6)]
    assert set(after) == {"n1", "n3"}, f"every connection after the kill reaches a live backend: {after}"
    lb.wait_for({"n2": "DOWN"}, timeout=5)  # and the health check noticed
    assert lb.process.alive(), lb.process.log_tail()


# ---- three real etcd members, one per node, run by the kubelet stand-in ------------------------------------


@dataclass
class EtcdNode:
    name: str
    host: Host
    rootfs: Path
    kubelet: KubeletStandin

    @property
    def client_url(self) -> str:
        return f"https://{self.host.address}:{ETCD_CLIENT_PORT}"

    def pki(self, name: str) -> Path:
        return self.rootfs / PKI / name


@dataclass
class EtcdCluster:
    topology: Topology
    nodes: list[EtcdNode]
    timings: dict[str, float] = field(default_factory=dict)

    def etcdctl(
        self, sender: EtcdNode, *args: str, via: list[EtcdNode] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """etcdctl in ``sender``'s namespace with its apiserver-etcd-client cert, against ``via``."""
        targets = via or [sender]
        return etcdctl_in(
            self.topology,
            sender.host,
            sender.rootfs / PKI,
            [n.client_url for n in targets],
            *args,
            to=[n.host.address for n in targets],
        )

    def ok(self, sender: EtcdNode, *args: str, via: list[EtcdNode] | None = None) -> str:
        result = self.etcdctl(sender, *args, via=via)
        assert result.returncode == 0, f"etcdctl {' '.join(args)}: {result.stderr}{self.logs()}"
        return result.stdout

    def logs(self) -> str:
        tails = []
        for node in self.nodes:
            process = node.kubelet.process("etcd")
            tails.append(
                f"\n--- etcd on {node.name}:\n{process.log_tail(15) if process else '(not running)'}"
            )
        return "".join(tails)

    def healthy(self, node: EtcdNode) -> bool:
        return self.etcdctl(node, "endpoint", "health").returncode == 0


def node_config(name: str, address: str, initial_cluster: str, kubernetes_version: str) -> str:
    return f"""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: {address}
nodeRegistration:
  name: {name}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {kubernetes_version}
encryptionAlgorithm: ECDSA-P256
etcd:
  local:
    extraArgs:
    - name: initial-cluster
      value: {initial_cluster}
"""


# Only what etcd needs: every certificate (etcd's are among them) and the etcd manifest.
NOT_FOR_ETCD = (
    "preflight,kubeconfig,manifests/kube-apiserver,manifests/kube-controller-manager,"
    "manifests/kube-scheduler,kubelet-start,wait-control-plane,upload-config,mark-control-plane,"
    "bootstrap-token,kubelet-finalize,addon,show-join-command"
)


def prepare_node(rootfs: Path, config: Path) -> subprocess.Popen[str]:
    """``bootstrap init`` for one node, certs and the etcd manifest only (started, not waited for)."""
    return subprocess.Popen(
        [
            tool("bootstrap"),
            "init",
            "--config",
            str(config),
            "--rootfs",
            str(rootfs),
            "--skip-phases",
            NOT_FOR_ETCD,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finished(proc: subprocess.Popen[str], what: str) -> None:
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, f"{what} failed ({proc.returncode}):\n{out}"


@pytest.fixture(scope="module")
def etcd_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    base = tmp_path_factory.mktemp("etcd-cluster")
    binary = etcd_binary("etcd")
    kubernetes_version = kubernetes_version_for(etcd_version(binary))
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    with Topology(3) as topo:
        timings["topology up"] = topo.timings["up"]
        names = [f"cp{i}" for i in range(1, 4)]
        initial = ",".join(
            f"{name}=https://{host.address}:{ETCD_PEER_PORT}"
            for name, host in zip(names, topo.members, strict=True)
        )
        roots = [base / name / "rootfs" for name in names]
        configs = []
        for name, host, root in zip(names, topo.members, roots, strict=True):
            root.mkdir(parents=True)
            config = base / name / "kubeadm.yaml"
            config.write_text(node_config(name, host.address, initial, kubernetes_version))
            configs.append(config)
        t = time.monotonic()
        finished(prepare_node(roots[0], configs[0]), "cp1: bootstrap init (certs, etcd manifest)")
        for root in roots[1:]:  # one CA for the cluster: the first node's, as upload-certs would carry it
            for name in SHARED_PKI:
                (root / PKI / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(roots[0] / PKI / name, root / PKI / name)
        for proc, name in [
            (prepare_node(r, c), n) for r, c, n in zip(roots[1:], configs[1:], names[1:], strict=True)
        ]:
            finished(proc, f"{name}: bootstrap init (certs, etcd manifest)")
        timings["certs and manifests (bootstrap)"] = time.monotonic() - t

        topo.prove_mesh()  # the members will talk to each other's peer and client URLs
        nodes = [
            EtcdNode(
                name,
                host,
                root,
                KubeletStandin(root, netns=host.netns, binaries={"etcd": binary}, rescan_interval=0.1),
            )
            for name, host, root in zip(names, topo.members, roots, strict=True)
        ]
        cluster = EtcdCluster(topo, nodes, timings)
        try:
            t = time.monotonic()
            for node in nodes:
                node.kubelet.start()
            for node in nodes:
                wait_for(lambda n=node: cluster.healthy(n), HEALTHY_WITHIN, what=f"etcd on {node.name}")
            timings["3 etcd members healthy"] = time.monotonic() - t
            timings["setup total"] = time.monotonic() - t0
            yield cluster
        finally:
            t = time.monotonic()
            for node in nodes:
                node.kubelet.stop()
            timings["kubelets and etcd stopped"] = time.monotonic() - t
    timings["topology down"] = topo.timings["down"]
    print("\nharness timings (s): " + ", ".join(f"{k} {v:.2f}" for k, v in timings.items()))


def test_each_member_runs_from_its_nodes_manifest_inside_its_namespace(etcd_cluster: EtcdCluster) -> None:
    for node in etcd_cluster.nodes:
        process = node.kubelet.process("etcd")
        assert process is not None and process.pid is not None and process.exit_code() is None
        manifest = (node.rootfs / "etc/kubernetes/manifests/etcd.yaml").read_text()
        assert f"--advertise-client-urls=https://{node.host.address}:2379" in manifest
        # The process runs in the node's namespace: the kernel says so.
        own = os.stat(f"/proc/{process.pid}/ns/net").st_ino
        assert own == node.host.inode, f"etcd on {node.name} is not in {node.host.netns}"
        assert process.argv[0] == str(etcd_binary("etcd"))
        assert f"--data-dir={node.rootfs / 'var/lib/etcd'}" in process.argv


def test_each_etcd_pod_is_ready_by_its_manifests_readiness_probe(etcd_cluster: EtcdCluster) -> None:
    for node in etcd_cluster.nodes:
        pod = next(p for p in node.kubelet.pods.values() if p.cname == "etcd")
        assert pod.container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        wait_for(lambda p=pod: p.ready, HEALTHY_WITHIN, what=f"etcd on {node.name} ready")
        assert pod.status()["containerStatuses"][0]["ready"] is True


def test_member_certificates_come_from_one_ca_and_carry_the_nodes_address(etcd_cluster: EtcdCluster) -> None:
    ca = etcd_cluster.nodes[0].pki("etcd/ca.crt")
    for node in etcd_cluster.nodes:
        assert node.pki("etcd/ca.crt").read_bytes() == ca.read_bytes()
        for cert in ("etcd/server.crt", "etcd/peer.crt"):
            verified = subprocess.run(
                [tool("openssl"), "verify", "-CAfile", str(ca), str(node.pki(cert))],
                capture_output=True,
                text=True,
            )
            assert verified.returncode == 0, verified.stdout + verified.stderr
            text = subprocess.run(
                [tool("openssl"), "x509", "-noout", "-ext", "subjectAltName", "-in", str(node.pki(cert))],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            assert f"IP Address:{node.host.address}" in text, f"{node.name} {cert}: {text}"


def test_the_three_members_form_one_cluster(etcd_cluster: EtcdCluster) -> None:
    first = etcd_cluster.nodes[0]
    members = json.loads(etcd_cluster.ok(first, "member", "list", "-w", "json"))["members"]
    assert sorted((m["name"], m["peerURLs"]) for m in members) == [
        (n.name, [f"https://{n.host.address}:{ETCD_PEER_PORT}"]) for n in etcd_cluster.nodes
    ]
    assert not any(m.get("isLearner") for m in members)


def test_a_write_through_one_member_is_read_through_another(etcd_cluster: EtcdCluster) -> None:
    first, second = etcd_cluster.nodes[0], etcd_cluster.nodes[1]
    etcd_cluster.ok(first, "put", "/harness/written-on", first.name)
    assert etcd_cluster.ok(second, "get", "/harness/written-on", "--print-value-only").strip() == first.name


def test_the_cluster_still_writes_with_one_member_killed_and_the_member_catches_up(
    etcd_cluster: EtcdCluster,
) -> None:
    first, second, third = etcd_cluster.nodes
    process = third.kubelet.process("etcd")
    assert process is not None and process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    third.kubelet.stop()  # the node is down: nobody restarts its etcd
    assert process.exit_code() == -signal.SIGKILL
    assert not etcd_cluster.healthy(third)

    etcd_cluster.ok(first, "put", "/harness/while-cp3-down", "two of three", via=[first, second])
    assert (
        etcd_cluster.ok(second, "get", "/harness/while-cp3-down", "--print-value-only").strip()
        == "two of three"
    )

    third.kubelet.start()  # the node comes back: its kubelet runs the manifest again, same data dir
    wait_for(lambda: etcd_cluster.healthy(third), HEALTHY_WITHIN, what="cp3's etcd back")
    read = etcd_cluster.ok(third, "get", "/harness/while-cp3-down", "--print-value-only", "--consistency=s")
    assert read.strip() == "two of three", "the restarted member caught up from the others"


def test_the_kubelet_restarts_an_etcd_that_died(etcd_cluster: EtcdCluster) -> None:
    second = etcd_cluster.nodes[1]
    process = second.kubelet.process("etcd")
    assert process is not None and process.pid is not None
    os.kill(process.pid, signal.SIGKILL)

    def restarted() -> bool:
        now = second.kubelet.process("etcd")
        return now is not None and now.pid != process.pid and now.exit_code() is None

    wait_for(restarted, HEALTHY_WITHIN, what="the kubelet to restart etcd")
    wait_for(lambda: etcd_cluster.healthy(second), HEALTHY_WITHIN, what="the restarted etcd healthy")
    pod = next(p for p in second.kubelet.pods.values() if p.cname == "etcd")
    assert (
        pod.restart_count == 1
        and pod.status()["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 137
    )


def http_get(port: int, path: str) -> bytes:
    """GET on this thread's namespace's loopback (http.client: no proxy from the environment)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200, (port, path, response.status)
        return response.read()
    finally:
        conn.close()


def test_kubelet_healthz_and_etcd_metrics_are_on_the_nodes_own_loopback(etcd_cluster: EtcdCluster) -> None:
    for node in etcd_cluster.nodes:
        with etcd_cluster.topology.inside(node.host):
            assert json.loads(http_get(2381, "/health"))["health"] == "true"
            # what the manifest probes (etcd >= 3.5.11 paths, answered for an older binary too)
            assert http_get(2381, "/livez") == http_get(2381, "/readyz") == b"ok"
            assert http_get(node.kubelet.healthz_port, "/healthz") == b"ok"


# ---- a whole bootstrap init on one node, behind haproxy ---------------------------------------------------


# No host checks (the node is a directory), a short settle: the components are stand-ins.
INIT_FLAGS = ("--skip-phases", "preflight", "--settle", "1s", "-o", "json")


def test_bootstrap_init_runs_on_a_node_behind_haproxy_and_another_node_reads_the_api_through_it(
    topology: Topology, tmp_path: Path
) -> None:
    """The HA test's first step: init on node 1 with controlPlaneEndpoint = haproxy on the bridge,
    its kubelet stand-in (real etcd) in node 1's namespace; node 2 then uses the API through haproxy."""
    from kubernetes import client, config

    assert topology.switch is not None
    n1, n2, lb_host = topology.node(1), topology.node(2), topology.switch
    lb = topology.load_balancer(lb_host, LB_PORT, {"cp1": (n1.address, LB_PORT)}, tmp_path / "lb")
    rootfs = tmp_path / "cp1"
    rootfs.mkdir()
    kubeadm_config = tmp_path / "cp1.yaml"
    version = kubernetes_version_for(etcd_version(etcd_binary("etcd")))
    kubeadm_config.write_text(
        node_config("cp1", n1.address, f"cp1=https://{n1.address}:{ETCD_PEER_PORT}", version)
        + f'controlPlaneEndpoint: "{lb.address}:{lb.port}"\n'
    )
    topology.prove_mesh()
    init = topology.spawn(
        n1,
        [tool("bootstrap"), "init", "--config", str(kubeadm_config), "--rootfs", str(rootfs), *INIT_FLAGS],
        to=[n1.address, lb.address],
        log=tmp_path / "init.json",
    )
    wait_for(
        lambda: (rootfs / "var/lib/kubelet/config.yaml").exists() or not init.alive(),
        120,
        what="kubelet-start",
    )
    kubelet = KubeletStandin(
        rootfs, netns=n1.netns, binaries={"etcd": etcd_binary("etcd")}, rescan_interval=0.1
    )
    kubelet.start()
    try:
        init.popen.wait(timeout=300)
        assert init.popen.returncode == 0, init.log_tail(60)
        assert kubelet.node_name == "cp1" and kubelet.node_uid is not None

        admin = str(rootfs / "etc/kubernetes/admin.conf")
        with topology.inside(n2, lb.address):
            api = config.new_client_from_config(config_file=admin, persist_config=False)  # type: ignore[no-untyped-call]
            try:
                assert api.configuration.host == f"https://{lb.address}:{lb.port}"
                core = client.CoreV1Api(api)
                node_items: list[Any] = core.list_node(_request_timeout=5).items
                pod_items: list[Any] = core.list_namespaced_pod("kube-system", _request_timeout=5).items
                nodes = [n.metadata.name for n in node_items]
                pods = {p.metadata.name for p in pod_items}
            finally:
                api.close()
        assert nodes == ["cp1"]
        assert {"etcd-cp1", "kube-apiserver-cp1", "kube-controller-manager-cp1", "kube-scheduler-cp1"} <= pods
    finally:
        kubelet.stop()
