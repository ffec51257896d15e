"""A real HA cluster built with ``bootstrap init`` and ``bootstrap join``, then broken and mended.

Three control-plane nodes (cp1..cp3) with stacked etcd behind haproxy at ``controlPlaneEndpoint``,
and workers, each in its own network namespace with its own rootfs and kubelet stand-in
(tests/ha_cluster.py): real etcd from each node's rendered manifest, API stand-ins keeping their
objects in that etcd cluster. The module builds the cluster once (init on cp1, control-plane joins of
cp2 then cp3, a worker join of w1) and its tests run in order on it, each claim exact for the state the
earlier tests left:

1. 3 voting etcd members, every node's Node object and mirror pods, certificates from one CA carrying
   each node's address; a worker holds no control-plane material;
2. cp1 down (its kubelet, etcd and API stopped): writes through haproxy still succeed, a worker (w2)
   still joins; cp1 then comes back;
3. a second identical join of cp2 changes nothing and adds no member;
4. ``bootstrap reset`` on cp3 removes its member: 2 voting members, the cluster still writes;
5. a wrong CA hash, an unknown token and an expired certificate key are refused with the documented
   message, and nothing is written on the node (cp4);
6. a token made with a short ``--ttl`` expires; ``bootstrap token create --print-join-command`` on cp1
   gives a command that joins w3;
7. a control-plane join (cp4) whose etcd cannot start (its peer port taken) removes the learner it
   added and fails naming the cause.

Under pytest-xdist the module's tests must run on one worker, in order: .ci/test distributes by file
(``--dist loadfile``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ha_cluster import COMPONENTS, HOST_CHECKS, HaCluster, Node, Run, join_config
from tests.netns import Topology
from tests.tools import tool, wait_for

NAMES = ["cp1", "cp2", "cp3", "w1", "w2", "w3", "cp4"]
BACKENDS = ["cp1", "cp2", "cp3"]  # haproxy's servers: cp4 only ever tries to join
READY_WITHIN = 60.0
SHORT_DISCOVERY = join_config(discovery="3s")  # a refused token is not retried for kubeadm's 5 minutes


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaCluster]:
    base = tmp_path_factory.mktemp("join-ha")
    with Topology(len(NAMES)) as topo:
        cluster = HaCluster(topo, base, NAMES)
        cluster.timings["topology up"] = topo.timings["up"]
        try:
            cluster.start_load_balancer(BACKENDS)
            step(cluster, "init cp1", lambda: cluster.init(cluster.node("cp1")))
            for name in ("cp2", "cp3", "w1"):  # one at a time, as etcd takes one learner at a time
                step(cluster, f"join {name}", lambda n=name: cluster.join(cluster.node(n)))
            yield cluster
        finally:
            cluster.close()
    print("\nHA cluster timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in cluster.timings.items()))


RAN: dict[int, list[str]] = {}  # id(cluster) → the tests that have run on it, in order


@pytest.fixture(autouse=True)
def record(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "ha" in request.fixturenames:
        RAN.setdefault(id(request.getfixturevalue("ha")), []).append(request.node.name)


def ran_before(ha: HaCluster, *tests: str) -> None:
    """This test's claims are exact for the state ``tests`` left: they must have run on this cluster."""
    missing = [t for t in tests if t not in RAN.get(id(ha), [])]
    assert not missing, (
        f"{missing} did not run before this test on this cluster: the module's tests share one cluster "
        "and run in order on one worker (pytest-xdist: --dist loadfile, as .ci/test)"
    )


def step(cluster: HaCluster, what: str, command: Any) -> Run:
    t = time.monotonic()
    run: Run = command()
    cluster.timings[what] = time.monotonic() - t
    assert run.code == 0, f"{what} failed\n{run}{cluster.etcd_logs()}"
    return run


def nodes_of(ha: HaCluster, *names: str) -> list[Node]:
    return [ha.node(n) for n in names]


def voting(ha: HaCluster, via: list[Node]) -> list[tuple[str, list[str], bool]]:
    """(name, peer URLs, learner?) of every etcd member, as ``etcdctl member list`` reports them."""
    return sorted(
        (m.get("name", ""), m["peerURLs"], bool(m.get("isLearner"))) for m in ha.members(via[0], via)
    )


def expected_members(ha: HaCluster, *names: str) -> list[tuple[str, list[str], bool]]:
    return [(n.name, [n.peer_url], False) for n in nodes_of(ha, *names)]


def files_written(node: Node) -> list[str]:
    """Every file and directory under the node's rootfs (a refused join leaves none, not even a lock)."""
    return sorted(str(p.relative_to(node.rootfs)) for p in node.rootfs.rglob("*"))


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("openssl"), *args], capture_output=True, text=True)


def sans(cert: Path) -> str:
    shown = openssl("x509", "-noout", "-ext", "subjectAltName", "-in", str(cert))
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def verify(ca: Path, cert: Path) -> None:
    verified = openssl("verify", "-CAfile", str(ca), str(cert))
    assert verified.returncode == 0, f"{cert} does not chain to {ca}: {verified.stdout}{verified.stderr}"


def write_through_haproxy(ha: HaCluster, sender: Node, name: str, value: str) -> None:
    """A ConfigMap created with ``sender``'s admin.conf, whose server is the load balancer."""
    from kubernetes.client import CoreV1Api, V1ConfigMap, V1ObjectMeta

    with ha.api(sender) as api:
        CoreV1Api(api).create_namespaced_config_map(
            "default",
            V1ConfigMap(metadata=V1ObjectMeta(name=name), data={"value": value}),
            _request_timeout=10,
        )


def read_from(ha: HaCluster, node: Node, name: str) -> str:
    """The ConfigMap ``name`` read from ``node``'s own API server (not through haproxy)."""
    from kubernetes.client import CoreV1Api

    with ha.api(node, server=f"https://{node.address}:6443") as api:
        found = CoreV1Api(api).read_namespaced_config_map(name, "default", _request_timeout=10)
    return str(found.data["value"])


def node_names(ha: HaCluster, sender: Node) -> set[str]:
    from kubernetes.client import CoreV1Api

    with ha.api(sender, kubeconfig=ha.node("cp2")) as api:
        return {n.metadata.name for n in CoreV1Api(api).list_node(_request_timeout=10).items}


def registered(ha: HaCluster, node: Node) -> None:
    """Wait until ``node``'s kubelet has registered its Node and it is visible through haproxy."""
    ha.wait_registered(node, READY_WITHIN)
    assert node.name in node_names(ha, ha.node("cp2"))


@contextlib.contextmanager
def watching_members(ha: HaCluster, sender: Node, via: list[Node]) -> Iterator[list[list[dict[str, Any]]]]:
    """Snapshots of the etcd member list, taken every few tenths of a second while the block runs."""
    seen: list[list[dict[str, Any]]] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            result = ha.etcdctl(sender, "member", "list", "-w", "json", via=via)
            if result.returncode == 0:
                seen.append(json.loads(result.stdout)["members"])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        done.set()
        watcher.join(timeout=15)


def error_message(run: Run) -> str:
    doc = run.doc()
    assert doc["ok"] is False and doc["error"]["exitCode"] == run.code, run
    return str(doc["error"]["message"])


# ---- 1. the cluster as built --------


def test_etcd_has_three_voting_members_one_per_control_plane_node(ha: HaCluster) -> None:
    cps = nodes_of(ha, "cp1", "cp2", "cp3")
    for sender in cps:  # every member sees the same membership
        assert voting(ha, [sender]) == expected_members(ha, "cp1", "cp2", "cp3"), ha.etcd_logs()
    for node in cps:
        assert ha.etcd_healthy(node), f"etcd on {node.name}{ha.etcd_logs()}"


def test_every_node_has_its_node_object_and_every_control_plane_node_its_mirror_pods(ha: HaCluster) -> None:
    from kubernetes.client import CoreV1Api

    w1 = ha.node("w1")
    for node in nodes_of(ha, "cp1", "cp2", "cp3", "w1"):
        ha.wait_registered(node, READY_WITHIN)
    with ha.api(w1, kubeconfig=ha.node("cp1")) as api:  # from the worker's namespace, through haproxy
        core = CoreV1Api(api)
        nodes = {n.metadata.name: n for n in core.list_node(_request_timeout=10).items}
        pods = {
            p.metadata.name: p for p in core.list_namespaced_pod("kube-system", _request_timeout=10).items
        }
    assert set(nodes) == {"cp1", "cp2", "cp3", "w1"}
    for name in ("cp1", "cp2", "cp3"):
        labels = nodes[name].metadata.labels or {}
        assert "node-role.kubernetes.io/control-plane" in labels, (name, labels)
        taints = [(t.key, t.effect) for t in nodes[name].spec.taints or []]
        assert ("node-role.kubernetes.io/control-plane", "NoSchedule") in taints, (name, taints)
        for component in COMPONENTS:
            assert f"{component}-{name}" in pods, f"no mirror pod {component}-{name}: {sorted(pods)}"
        etcd = pods[f"etcd-{name}"].metadata
        assert etcd.annotations["kubeadm.kubernetes.io/etcd.advertise-client-urls"] == ha.node(name).etcd_url
        assert etcd.labels["component"] == "etcd" and etcd.labels["tier"] == "control-plane"
    assert "node-role.kubernetes.io/control-plane" not in (nodes["w1"].metadata.labels or {})
    assert not [p for p in pods if p.endswith("-w1")], "a worker runs no static pods"


def test_certificates_chain_to_one_ca_and_carry_each_nodes_address(ha: HaCluster) -> None:
    cp1 = ha.node("cp1")
    lb_address = ha.endpoint.rsplit(":", 1)[0]
    for node in nodes_of(ha, "cp1", "cp2", "cp3"):
        # The CAs and the service-account key came from cp1 (upload-certs), every leaf was made here.
        for shared in ("ca.crt", "ca.key", "etcd/ca.crt", "front-proxy-ca.crt", "sa.pub"):
            assert node.pki(shared).read_bytes() == cp1.pki(shared).read_bytes(), (node.name, shared)
        for leaf in ("apiserver.crt", "apiserver-kubelet-client.crt"):
            verify(cp1.pki("ca.crt"), node.pki(leaf))
        verify(cp1.pki("front-proxy-ca.crt"), node.pki("front-proxy-client.crt"))
        for leaf in (
            "etcd/server.crt",
            "etcd/peer.crt",
            "etcd/healthcheck-client.crt",
            "apiserver-etcd-client.crt",
        ):
            verify(cp1.pki("etcd/ca.crt"), node.pki(leaf))
        apiserver = sans(node.pki("apiserver.crt"))
        assert f"IP Address:{node.address}" in apiserver and f"IP Address:{lb_address}" in apiserver, (
            apiserver
        )
        for leaf in ("etcd/server.crt", "etcd/peer.crt"):
            names = sans(node.pki(leaf))
            for wanted in (
                f"IP Address:{node.address}",
                "IP Address:127.0.0.1",
                "IP Address:0:0:0:0:0:0:0:1",
            ):
                assert wanted in names, (node.name, leaf, names)
            assert "DNS:localhost" in names, (node.name, leaf, names)
        if node is not cp1:
            assert not node.path("etc/kubernetes/super-admin.conf").exists(), "kubeadm makes none on a join"
    # Every kubelet's client certificate came from its TLS bootstrap, signed by the cluster CA.
    for node in nodes_of(ha, "cp2", "cp3", "w1"):
        current = node.path("var/lib/kubelet/pki/kubelet-client-current.pem")
        assert current.is_symlink() and Path(str(current.readlink())).is_absolute(), current
        verify(cp1.pki("ca.crt"), node.rootfs / str(current.readlink()).lstrip("/"))
        assert not node.path("etc/kubernetes/bootstrap-kubelet.conf").exists(), f"{node.name}: left behind"


def test_a_worker_holds_no_control_plane_material(ha: HaCluster) -> None:
    w1 = ha.node("w1")
    manifests = w1.path("etc/kubernetes/manifests")
    assert not manifests.exists() or not any(manifests.iterdir())
    for absent in ("etc/kubernetes/admin.conf", "etc/kubernetes/pki/ca.key", "etc/kubernetes/pki/etcd"):
        assert not w1.path(absent).exists(), absent
    etcd_data = w1.path("var/lib/etcd")
    assert not etcd_data.exists() or not any(etcd_data.iterdir())
    assert w1.pki("ca.crt").read_bytes() == ha.node("cp1").pki("ca.crt").read_bytes()


# ---- 2. node 1 down --------


def test_with_node_1_down_writes_through_haproxy_succeed_and_a_worker_still_joins(ha: HaCluster) -> None:
    cp1, cp2, cp3, w2 = nodes_of(ha, "cp1", "cp2", "cp3", "w2")
    assert ha.lb is not None
    ha.stop_kubelet(cp1)  # its etcd and its API server with it
    try:
        assert not ha.etcd_healthy(cp1)
        ha.lb.wait_for({"cp1": "DOWN", "cp2": "UP", "cp3": "UP"})
        write_through_haproxy(ha, cp2, "written-while-cp1-down", "two of three")
        assert read_from(ha, cp3, "written-while-cp1-down") == "two of three", "one state behind both APIs"

        run = step(ha, "join w2 (cp1 down)", lambda: ha.join(w2))
        assert run.phase("kubelet-start")["status"] == "ran"
        registered(ha, w2)
    finally:
        ha.start_kubelet(cp1)  # the machine comes back: same data dir, same manifests
        wait_for(lambda: ha.etcd_healthy(cp1), READY_WITHIN, what="cp1's etcd back")
        ha.lb.wait_for({"cp1": "UP"}, timeout=READY_WITHIN)
    assert read_from(ha, cp1, "written-while-cp1-down") == "two of three", "cp1 caught up"


# ---- 3. a second join of a joined node --------


def test_a_second_identical_control_plane_join_changes_nothing(ha: HaCluster) -> None:
    ran_before(
        ha, "test_with_node_1_down_writes_through_haproxy_succeed_and_a_worker_still_joins"
    )  # cp1 back
    cp1, cp2, cp3 = nodes_of(ha, "cp1", "cp2", "cp3")
    before = ha.members(cp1, [cp1, cp2, cp3])
    # What join wrote (etcd's data, its log and our own ledger change by themselves).
    ours = [
        p
        for p in files_written(cp2)
        if cp2.path(p).is_file() and not p.startswith(("var/lib/etcd", "var/log/", "var/lib/kube-bootstrap"))
    ]
    files_before = {p: cp2.path(p).read_bytes() for p in ours}

    run = ha.join(cp2)

    assert run.code == 0, f"{run}{ha.etcd_logs()}"
    doc = run.doc()
    assert doc["changed"] is False, [p["path"] for p in doc["phases"] if p["changed"]]
    assert not [p["path"] for p in doc["phases"] if p["changed"]]
    after = ha.members(cp1, [cp1, cp2, cp3])
    assert sorted((m["ID"], m["name"]) for m in after) == sorted((m["ID"], m["name"]) for m in before)
    assert voting(ha, [cp1]) == expected_members(ha, "cp1", "cp2", "cp3")
    changed = [
        p for p, data in files_before.items() if not cp2.path(p).exists() or cp2.path(p).read_bytes() != data
    ]
    assert not changed, f"a no-op join rewrote {changed}"


# ---- 4. reset of node 3 --------


def test_reset_of_node_3_removes_its_member_and_the_cluster_stays_healthy(ha: HaCluster) -> None:
    # The re-run's claim (3 members) is for the cluster before this reset.
    ran_before(ha, "test_a_second_identical_control_plane_join_changes_nothing")
    cp1, cp2, cp3 = nodes_of(ha, "cp1", "cp2", "cp3")
    assert ha.lb is not None
    member = next(m for m in ha.members(cp1, [cp1, cp2, cp3]) if m["name"] == "cp3")
    run = ha.bootstrap(cp3, "reset", "-f", "--rootfs", str(cp3.rootfs), "--timeout", "2s", "-o", "json")
    assert run.code == 0, f"{run}{ha.etcd_logs()}"
    ha.stop_kubelet(cp3)  # reset does not stop the kubelet (as kubeadm)

    reported = run.doc()["etcdMember"]
    assert reported["removed"] is True and reported["name"] == "cp3", f"{reported}\n{run}{ha.etcd_logs(40)}"
    assert int(reported["id"], 16) == member["ID"] and reported["peerURLs"] == [cp3.peer_url], reported

    assert voting(ha, [cp1, cp2]) == expected_members(ha, "cp1", "cp2")
    assert ha.etcd_healthy(cp1) and ha.etcd_healthy(cp2)
    assert not cp3.path("etc/kubernetes/manifests/etcd.yaml").exists()
    etcd_data = cp3.path("var/lib/etcd")
    assert not etcd_data.exists() or not any(etcd_data.iterdir()), "a removed member's data is wiped"
    ha.lb.wait_for({"cp3": "DOWN"})
    write_through_haproxy(ha, cp1, "written-after-cp3-reset", "two members")
    assert read_from(ha, cp2, "written-after-cp3-reset") == "two members"


# ---- 5. refused joins --------


@pytest.fixture
def short_discovery(ha: HaCluster) -> Path:
    path = ha.base / "short-discovery.yaml"
    path.write_text(SHORT_DISCOVERY)
    return path


def test_a_wrong_ca_hash_is_refused_with_the_hash_the_server_presented(
    ha: HaCluster, short_discovery: Path
) -> None:
    cp4 = ha.node("cp4")
    run = ha.join(cp4, "--config", str(short_discovery), ca_hash="sha256:" + "0" * 64)
    assert run.code == 1, run
    message = error_message(run)
    assert "does not match --discovery-token-ca-cert-hash" in message and ha.ca_hash in message, message
    assert files_written(cp4) == []
    assert cp4.kubelet is None


def test_an_unknown_token_is_refused_with_how_to_make_a_new_one(ha: HaCluster, short_discovery: Path) -> None:
    cp4 = ha.node("cp4")
    run = ha.join(cp4, "--config", str(short_discovery), token="zzzzzz.0123456789abcdef")
    assert run.code == 1, run
    message = error_message(run)
    assert 'token id "zzzzzz" is invalid for this cluster or it has expired' in message, message
    assert "bootstrap token create --print-join-command" in message, message
    assert files_written(cp4) == []


def test_an_expired_certificate_key_is_refused_with_the_command_to_upload_again(ha: HaCluster) -> None:
    from kubernetes.client import CoreV1Api
    from kubernetes.client.exceptions import ApiException

    cp1, cp4 = ha.node("cp1"), ha.node("cp4")
    key = "ab" * 32
    upload = ha.bootstrap(
        cp1,
        *("init", "phase", "upload-certs", "--upload-certs", "--certificate-key", key),
        *("--certificate-key-ttl", "2s", "--config", str(ha.base / "cp1" / "kubeadm.yaml")),
        *("--rootfs", str(cp1.rootfs), "-o", "json"),
    )
    assert upload.code == 0, upload

    def gone() -> bool:  # the token cleaner deleted its owner token, the garbage collector the Secret
        with ha.api(cp1) as api:
            try:
                CoreV1Api(api).read_namespaced_secret("kubeadm-certs", "kube-system", _request_timeout=5)
            except ApiException as exc:
                return exc.status == 404
        return False

    wait_for(gone, 30, what="kubeadm-certs to expire")
    run = ha.join(cp4, certificate_key=key)
    assert run.code == 1, run
    message = error_message(run)
    assert "kubeadm-certs" in message and "bootstrap init phase upload-certs --upload-certs" in message, (
        message
    )
    assert files_written(cp4) == []
    assert cp4.kubelet is None


# ---- 6. an expired token, and a fresh join command --------


def test_a_short_lived_token_expires_and_token_create_prints_a_command_that_joins(
    ha: HaCluster, short_discovery: Path
) -> None:
    from kubernetes.client import CoreV1Api

    cp1, w3 = ha.node("cp1"), ha.node("w3")
    made = ha.bootstrap(cp1, "token", "create", "--ttl", "2s", "--rootfs", str(cp1.rootfs))
    assert made.code == 0, made
    token = made.stdout.strip()
    token_id = token.split(".")[0]

    def expired() -> bool:  # the stand-in's token cleaner deletes it once expired
        with ha.api(cp1) as api:
            secrets = CoreV1Api(api).list_namespaced_secret("kube-system", _request_timeout=5).items
        return f"bootstrap-token-{token_id}" not in {s.metadata.name for s in secrets}

    wait_for(expired, 30, what=f"token {token_id} to expire")
    refused = ha.join(w3, "--config", str(short_discovery), token=token)
    assert refused.code == 1, refused
    assert f'token id "{token_id}" is invalid for this cluster or it has expired' in error_message(refused)
    assert files_written(w3) == []

    printed = ha.bootstrap(cp1, "token", "create", "--print-join-command", "--rootfs", str(cp1.rootfs))
    assert printed.code == 0, printed
    command = shlex.split(printed.stdout.strip().splitlines()[-1])
    assert command[:3] == ["bootstrap", "join", ha.endpoint], command
    assert ha.ca_hash in command and "--token" in command
    new_token = command[command.index("--token") + 1]
    secret_name = f"bootstrap-token-{new_token.split('.')[0]}"
    with ha.api(cp1) as api:
        secret = CoreV1Api(api).read_namespaced_secret(secret_name, "kube-system", _request_timeout=5)
    assert base64.b64decode(secret.data["token-secret"]).decode() == new_token.split(".")[1]

    # The printed command as the user runs it on w3, plus what makes a directory a node here.
    extra = ["--node-name", w3.name, "--rootfs", str(w3.rootfs), "--ignore-preflight-errors"]
    future = ha.bootstrap_async(w3, *command[1:], *extra, HOST_CHECKS, "-o", "json")
    run = ha.with_kubelet(w3, future)
    assert run.code == 0, run
    registered(ha, w3)


# ---- 7. etcd on the joining node cannot start --------


def test_a_control_plane_join_whose_etcd_cannot_start_removes_its_learner(ha: HaCluster) -> None:
    ran_before(
        ha,
        "test_reset_of_node_3_removes_its_member_and_the_cluster_stays_healthy",
        "test_an_expired_certificate_key_is_refused_with_the_command_to_upload_again",
    )
    cp1, cp2, cp4 = nodes_of(ha, "cp1", "cp2", "cp4")
    # The certificates expired in test 5: upload them again, with the key the join will use (the fix
    # that test's message names).
    upload = ha.bootstrap(
        cp1,
        *("init", "phase", "upload-certs", "--upload-certs", "--certificate-key", ha.certificate_key),
        *("--config", str(ha.base / "cp1" / "kubeadm.yaml"), "--rootfs", str(cp1.rootfs), "-o", "json"),
    )
    assert upload.code == 0, upload
    before = ha.members(cp1, [cp1, cp2])
    config = ha.base / "short-etcd.yaml"
    config.write_text(join_config(etcdAPICall="10s"))

    with ha.topology.inside(cp4.host):
        squatter = socket.socket()  # a socket belongs to the namespace it was made in
    try:
        squatter.bind((cp4.address, 2380))  # something else holds the etcd peer port
        squatter.listen()
        t = time.monotonic()
        with watching_members(ha, cp1, [cp1, cp2]) as seen:
            run = ha.join(cp4, "--config", str(config), ignore=f"{HOST_CHECKS},Port-2380")
        ha.timings["failed control-plane join"] = time.monotonic() - t
        assert run.code == 1, f"{run}{ha.etcd_logs()}"
        # The join did add its learner (seen while it ran), then took it out again.
        learners = {m["ID"] for snapshot in seen for m in snapshot if m["peerURLs"] == [cp4.peer_url]}
        assert len(learners) == 1, seen
        assert all(
            m.get("isLearner") for snapshot in seen for m in snapshot if m["peerURLs"] == [cp4.peer_url]
        )
        message = error_message(run)
        assert f"etcd learner {next(iter(learners)):x}" in message, message
        assert f"the etcd peer port {cp4.address}:2380 is held by another process" in message, message
        assert "the learner was removed from the cluster" in message, message
        after = ha.members(cp1, [cp1, cp2])
        assert sorted((m["ID"], m["name"]) for m in after) == sorted((m["ID"], m["name"]) for m in before)
        assert voting(ha, [cp1, cp2]) == expected_members(ha, "cp1", "cp2")
        write_through_haproxy(ha, cp2, "written-after-a-failed-join", "still two")
    finally:
        squatter.close()
        ha.stop_kubelet(cp4)
