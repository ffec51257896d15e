"""``bootstrap join`` end to end on loopback: a real ``bootstrap init --upload-certs`` on node A (its
rootfs, its stand-in kubelet running the stand-in API server), then ``bootstrap join`` into rootfs B
with a second stand-in kubelet that performs the TLS bootstrap, exactly as a user runs both.

The control-plane join as a whole needs its own network namespace (its ports would collide with A's
on one loopback: tests/test_join_ha.py); here its preparation (download-certs, certs with this node's
SANs, kubeconfigs, manifests) runs as ``join phase control-plane-prepare`` against A's API.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client import CoreV1Api

from bootstrap.cluster.client import KubeApi
from bootstrap.cluster.joining import etcd_client_urls
from bootstrap.phases.etcd_join import peer_cert_problem
from tests.conftest import files_under
from tests.standin.harness import (
    add_endpoint_and_certificate_key,
    admin_client,
    free_ports,
    kubelet_once_configured,
)
from tests.standin.tls_bootstrap import map_file_refs
from tests.test_init_e2e import Node, make_node, plant_host_tools, run_init
from tests.tools import run_dry_run_keeping, tool, wait_for

KEY = "3d5b1f0e9c8a7b6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d"
WORKER = "worker-b"
CONTROL_PLANE_FILES = (
    "etc/kubernetes/manifests",
    "etc/kubernetes/admin.conf",
    "etc/kubernetes/super-admin.conf",
    "etc/kubernetes/pki/ca.key",
    "etc/kubernetes/pki/sa.key",
    "etc/kubernetes/pki/etcd",
    "var/lib/etcd",
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, dict[str, Any], Any]]:
    """Node A, initialized with --upload-certs and a controlPlaneEndpoint; its -o json document; the API."""
    node = make_node(tmp_path_factory.mktemp("join-a"))
    add_endpoint_and_certificate_key(node.config, KEY)
    with kubelet_once_configured(node.rootfs) as state:
        code, doc, stderr = run_init(node, "--upload-certs")
        assert code == 0, stderr
        yield node, doc, state["kubelet"].api


def _details(doc: dict[str, Any]) -> dict[str, Any]:
    details: dict[str, Any] = next(p for p in doc["phases"] if p["path"] == "show-join-command")["details"]
    return details


def join_config(tmp_path: Path, name: str, *, discovery: str = "30s") -> Path:
    """This node's JoinConfiguration (name, short timeouts) and its KubeletConfiguration (its own healthz)."""
    path = tmp_path / f"{name}-join.yaml"
    (healthz,) = free_ports(1)
    path.write_text(
        f"""\
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
nodeRegistration:
  name: {name}
timeouts:
  discovery: {discovery}
  tlsBootstrap: 60s
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
healthzBindAddress: 127.0.0.1
healthzPort: {healthz}
"""
    )
    return path


def join_args(
    cluster: tuple[Node, dict[str, Any], Any], rootfs: Path, cfg: Path, *extra: str, token: str | None = None
) -> list[str]:
    _, doc, api = cluster
    details = _details(doc)
    return [
        tool("bootstrap"),
        "join",
        f"127.0.0.1:{api.port}",
        "--token",
        token or details["token"],
        "--discovery-token-ca-cert-hash",
        details["caCertHash"],
        "--config",
        str(cfg),
        "--rootfs",
        str(rootfs),
        "-o",
        "json",
        *extra,
    ]


def run(args: list[str]) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=180)
    doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, doc, proc.stderr


def statuses(doc: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    return {p["path"]: (p["status"], p["changed"]) for p in doc["phases"]}


def node_client(rootfs: Path) -> Any:
    """The official client with the node's kubelet.conf, its absolute file links read inside the rootfs."""
    data = yaml.safe_load((rootfs / "etc/kubernetes/kubelet.conf").read_text())
    map_file_refs(data, rootfs)
    cfg = client.Configuration()
    cfg.retries = False
    return config.new_client_from_config_dict(  # type: ignore[no-untyped-call]
        data, client_configuration=cfg, persist_config=False
    )


def test_a_worker_joins_reruns_unchanged_and_resets(
    cluster: tuple[Node, dict[str, Any], Any], tmp_path: Path
) -> None:
    node, _, api = cluster
    rootfs = tmp_path / "b"
    rootfs.mkdir()
    plant_host_tools(rootfs)
    planted = files_under(rootfs)
    cfg = join_config(tmp_path, WORKER)
    with kubelet_once_configured(rootfs) as state:
        code, doc, stderr = run(join_args(cluster, rootfs, cfg))
        assert code == 0, stderr
        ran = statuses(doc)
        assert ran["preflight"] == ("ran", False)
        assert ran["kubelet-start"] == ("ran", True)
        assert ran["kubelet-wait-bootstrap"] == ("ran", True)
        control_plane = [
            p
            for p in doc["phases"]
            if p["path"] not in ("preflight", "kubelet-start", "kubelet-wait-bootstrap")
        ]
        assert control_plane and all(
            p["status"] == "skipped" and p["skipReason"].startswith("worker node") for p in control_plane
        ), control_plane
        discovery = next(p for p in doc["phases"] if p["path"] == "preflight")["details"]["discovery"]
        assert discovery["server"] == api.url
        assert state["kubelet"].bootstrap_error is None

        # Node B registered, and B's kubelet.conf is the node: the API server saw system:node:worker-b.
        admin = CoreV1Api(admin_client(node.rootfs))
        # The kubelet registers its Node on its own once it has its certificate (join does not wait).
        assert wait_for(lambda: admin.read_node(WORKER), timeout=30, what="Node").metadata.name == WORKER
        api.request_log.clear()
        assert CoreV1Api(node_client(rootfs)).read_node(WORKER).metadata.name == WORKER
        assert ("GET", f"/api/v1/nodes/{WORKER}", f"system:node:{WORKER}") in api.request_log

        # What join wrote: the cluster CA, the kubelet's config (the cluster's, with B's healthz over
        # it) and flags; the bootstrap kubeconfig is gone once the kubelet has its own.
        assert (rootfs / "etc/kubernetes/pki/ca.crt").read_bytes() == (
            node.rootfs / "etc/kubernetes/pki/ca.crt"
        ).read_bytes()
        assert not (rootfs / "etc/kubernetes/bootstrap-kubelet.conf").exists()
        kubelet_config = yaml.safe_load((rootfs / "var/lib/kubelet/config.yaml").read_text())
        assert kubelet_config["healthzPort"] == yaml.safe_load(cfg.read_text().split("---")[1])["healthzPort"]
        assert kubelet_config["clusterDNS"] == ["10.96.0.10"]  # from the cluster's kubelet-config
        assert f"--hostname-override={WORKER}" in (rootfs / "var/lib/kubelet/kubeadm-flags.env").read_text()
        # A worker gets no control-plane material.
        for path in CONTROL_PLANE_FILES:
            assert not (rootfs / path).exists(), path

        # The same join again converges: every phase unchanged, still one Node.
        code, again, stderr = run(join_args(cluster, rootfs, cfg))
        assert code == 0, stderr
        assert not again["changed"], [p for p in again["phases"] if p["changed"]]
        assert "converging" in " ".join(
            next(p for p in again["phases"] if p["path"] == "preflight")["messages"]
        )
        assert not (rootfs / "etc/kubernetes/bootstrap-kubelet.conf").exists()

    # reset removes what join wrote (and the kubelet.conf the join asked for); the planted tools stay.
    proc = subprocess.run(
        [tool("bootstrap"), "reset", "--rootfs", str(rootfs), "-f", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    removed = json.loads(proc.stdout)["removed"]
    for host in (
        "/etc/kubernetes/pki/ca.crt",
        "/var/lib/kubelet/config.yaml",
        "/var/lib/kubelet/kubeadm-flags.env",
        "/etc/kubernetes/kubelet.conf",
    ):
        assert host in removed
        assert not (rootfs / host.lstrip("/")).exists(), host
    left = [f for f in files_under(rootfs) if not f.startswith("var/lib/kubelet/pki/")]
    assert left == planted


@pytest.mark.parametrize(
    ("case", "cause"),
    [
        ("wrong-ca-hash", "does not match --discovery-token-ca-cert-hash: the server presented sha256:"),
        ("unknown-token", 'token id "nosuch" is invalid for this cluster or it has expired'),
        ("wrong-certificate-key", "the certificate key does not decrypt Secret kube-system/kubeadm-certs"),
        (
            "name-taken",
            "a Node named 'cp1' already exists in the cluster and is Ready, and this machine is not it",
        ),
        ("unreachable", "cannot reach the API server at https://127.0.0.1:"),
        ("no-certificate-key", "no --certificate-key, and the shared certificates are not on this node"),
    ],
)
def test_a_refused_join_says_why_and_writes_nothing(
    cluster: tuple[Node, dict[str, Any], Any], tmp_path: Path, case: str, cause: str
) -> None:
    rootfs = tmp_path / "refused"
    rootfs.mkdir()
    plant_host_tools(rootfs)
    planted = files_under(rootfs)
    cfg = join_config(tmp_path, "cp1" if case == "name-taken" else f"refused-{case}", discovery="3s")
    args = join_args(
        cluster, rootfs, cfg, token="nosuch.0123456789abcdef" if case == "unknown-token" else None
    )
    if case == "wrong-ca-hash":
        args[args.index("--discovery-token-ca-cert-hash") + 1] = "sha256:" + "0" * 64
    if case == "wrong-certificate-key":
        args += [
            "--control-plane",
            "--certificate-key",
            "f" * 64,
            "--apiserver-advertise-address",
            "127.0.0.1",
        ]
    if case == "no-certificate-key":
        args += ["--control-plane", "--apiserver-advertise-address", "127.0.0.1"]
    if case == "unreachable":
        (closed,) = free_ports(1)  # free: nobody listens there
        args[2] = f"127.0.0.1:{closed}"
    code, doc, stderr = run(args)
    assert code == (4 if case in ("name-taken", "no-certificate-key") else 1), stderr
    message = doc["error"]["message"]
    assert cause in message and "\n" not in message
    fixes = {
        "wrong-ca-hash": "bootstrap token create --print-join-command",
        "unknown-token": "bootstrap token create --print-join-command",
        "wrong-certificate-key": "bootstrap init phase upload-certs --upload-certs",
        "name-taken": "--node-name",
        "no-certificate-key": "bootstrap init phase upload-certs --upload-certs",
        "unreachable": "check the address and port",
    }
    assert fixes[case] in message
    if case == "wrong-ca-hash":
        assert _details(cluster[1])["caCertHash"] in message  # the hash the server presented
    assert "f" * 64 not in message and "0123456789abcdef" not in message
    assert files_under(rootfs) == planted
    assert not (rootfs / "var/lib/kube-bootstrap").exists()


def openssl(*args: str) -> str:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def sans(cert: Path) -> set[str]:
    text = openssl("x509", "-in", str(cert), "-noout", "-ext", "subjectAltName")
    return {item.strip() for item in text.splitlines()[1].split(",")}


def test_control_plane_prepare_downloads_the_shared_certs_and_makes_this_nodes_own(
    cluster: tuple[Node, dict[str, Any], Any], tmp_path: Path
) -> None:
    node = cluster[0]
    rootfs = tmp_path / "cp-b"
    rootfs.mkdir()
    cfg = join_config(tmp_path, "cp-b")
    args = join_args(cluster, rootfs, cfg, "--control-plane", "--certificate-key", KEY)
    args[2:2] = ["phase", "control-plane-prepare"]  # bootstrap join phase control-plane-prepare ENDPOINT ...
    args += ["--apiserver-advertise-address", "127.0.0.2", "--apiserver-bind-port", "16443"]
    code, doc, stderr = run(args)
    assert code == 0, stderr
    assert doc["command"] == "join phase"
    ran = statuses(doc)
    assert set(ran) == {p for p in ran if p.startswith("control-plane-prepare/")}
    assert all(status == ("ran", True) for status in ran.values()), ran

    pki, a_pki = rootfs / "etc/kubernetes/pki", node.rootfs / "etc/kubernetes/pki"
    for name in (
        "ca.crt",
        "ca.key",
        "front-proxy-ca.crt",
        "front-proxy-ca.key",
        "sa.key",
        "sa.pub",
        "etcd/ca.crt",
        "etcd/ca.key",
    ):
        assert (pki / name).read_bytes() == (a_pki / name).read_bytes(), name
        mode = (pki / name).stat().st_mode & 0o777
        assert mode == (0o600 if name.endswith((".key", ".pub")) else 0o644), (name, oct(mode))
    # This node's own leaf certificates, from the downloaded CAs, with its own addresses (openssl).
    for name, ca in (
        ("apiserver", "ca"),
        ("etcd/server", "etcd/ca"),
        ("etcd/peer", "etcd/ca"),
        ("front-proxy-client", "front-proxy-ca"),
        ("apiserver-etcd-client", "etcd/ca"),
    ):
        cert = pki / f"{name}.crt"
        assert openssl("verify", "-CAfile", str(pki / f"{ca}.crt"), str(cert)).strip() == f"{cert}: OK"
        assert cert.read_bytes() != (a_pki / f"{name}.crt").read_bytes(), name
    apiserver = sans(pki / "apiserver.crt")
    assert {"IP Address:127.0.0.2", "IP Address:127.0.0.1", "DNS:cp-b", "DNS:kubernetes"} <= apiserver
    for name in ("etcd/server", "etcd/peer"):
        assert {
            "DNS:cp-b",
            "DNS:localhost",
            "IP Address:127.0.0.2",
            "IP Address:127.0.0.1",
            "IP Address:0:0:0:0:0:0:0:1",
        } <= sans(pki / f"{name}.crt"), name
    # kubeconfigs as kubeadm's join writes them: no super-admin.conf; admin.conf signed by the
    # downloaded CA, and accepted by the cluster.
    kube = rootfs / "etc/kubernetes"
    assert {p.name for p in kube.glob("*.conf")} == {
        "admin.conf",
        "controller-manager.conf",
        "scheduler.conf",
    }
    cfg_client = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kube / "admin.conf"), persist_config=False
    )
    assert CoreV1Api(cfg_client).read_node("cp1").metadata.name == "cp1"
    # The control plane's manifests, this node's address in the API server's; etcd's comes with etcd-join.
    manifests = kube / "manifests"
    assert {p.name for p in manifests.iterdir()} == {
        "kube-apiserver.yaml",
        "kube-controller-manager.yaml",
        "kube-scheduler.yaml",
    }
    apiserver_pod = (manifests / "kube-apiserver.yaml").read_text()
    assert "--advertise-address=127.0.0.2" in apiserver_pod and "--secure-port=16443" in apiserver_pod

    code, again, stderr = run(args)
    assert code == 0, stderr
    assert not again["changed"], [p["path"] for p in again["phases"] if p["changed"]]

    # etcd-join's guard, on the certificate this node made: its own address passes; a peer
    # certificate made for another address is refused before any member is added.
    assert peer_cert_problem(pki / "etcd/peer.crt", "127.0.0.2") is None
    problem = peer_cert_problem(pki / "etcd/peer.crt", "10.9.9.9")
    assert problem is not None and "does not carry this node's address 10.9.9.9" in problem
    assert "no etcd member was added" in problem and "control-plane-prepare/certs/etcd-peer" in problem


def test_etcd_join_finds_the_members_client_urls_on_the_etcd_mirror_pods(
    cluster: tuple[Node, dict[str, Any], Any],
) -> None:
    node = cluster[0]
    etcd_pod = (node.rootfs / "etc/kubernetes/manifests/etcd.yaml").read_text()
    advertised = re.search(r"etcd.advertise-client-urls: (\S+)", etcd_pod)
    assert advertised is not None
    api = KubeApi(node.rootfs / "etc/kubernetes/super-admin.conf")
    try:
        assert etcd_client_urls(api, timeout=30) == [advertised[1]]
    finally:
        api.close()


def test_a_dry_run_against_the_cluster_plans_the_real_writes_and_writes_nothing(
    cluster: tuple[Node, dict[str, Any], Any], tmp_path: Path
) -> None:
    rootfs = tmp_path / "dry"
    rootfs.mkdir()
    plant_host_tools(rootfs)
    planted = files_under(rootfs)
    cfg = join_config(tmp_path, "dry-b")
    text = cfg.read_text().replace(
        "  name: dry-b\n", "  name: dry-b\n  taints:\n  - {key: dedicated, value: gpu, effect: NoSchedule}\n"
    )
    cfg.write_text(text)
    kept = tmp_path / "dry-out"  # the dry run's directory, kept to read what it would write
    proc = run_dry_run_keeping(join_args(cluster, rootfs, cfg, "--dry-run"), kept, timeout=180)
    code, doc, stderr = proc.returncode, json.loads(proc.stdout), proc.stderr
    assert code == 0, stderr
    # A worker's taints go to its kubelet, which registers the node with them (kubeadm's way).
    flags = (kept / "var/lib/kubelet/kubeadm-flags.env").read_text()
    assert "--register-with-taints=dedicated=gpu:NoSchedule" in flags
    plan = {s["phase"]: s for s in doc["dryRunPlan"]["plan"]}
    assert plan["preflight"]["status"] == "ran"
    assert plan["kubelet-start"]["wouldChange"]
    assert {
        "/etc/kubernetes/bootstrap-kubelet.conf",
        "/etc/kubernetes/pki/ca.crt",
        "/var/lib/kubelet/config.yaml",
        "/var/lib/kubelet/kubeadm-flags.env",
    } <= set(plan["kubelet-start"]["files"])
    assert files_under(rootfs) == planted and not (rootfs / "var/lib/kube-bootstrap").exists()


def test_a_worker_joins_with_a_discovery_file_and_the_tls_bootstrap_token(
    cluster: tuple[Node, dict[str, Any], Any], tmp_path: Path
) -> None:
    import base64

    node, doc, api = cluster
    discovery = tmp_path / "cluster.conf"  # what an admin would hand out: server and CA, no credentials
    ca = (node.rootfs / "etc/kubernetes/pki/ca.crt").read_bytes()
    discovery.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {
                            "server": api.url,
                            "certificate-authority-data": base64.b64encode(ca).decode(),
                        },
                    }
                ],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": ""}}],
                "current-context": "c",
            }
        )
    )
    rootfs = tmp_path / "file-b"
    rootfs.mkdir()
    plant_host_tools(rootfs)
    cfg = join_config(tmp_path, "worker-file")
    args = [
        tool("bootstrap"), "join", "--discovery-file", str(discovery),
        "--tls-bootstrap-token", _details(doc)["token"],
        "--config", str(cfg), "--rootfs", str(rootfs), "-o", "json",
    ]  # fmt: skip
    with kubelet_once_configured(rootfs):
        code, result, stderr = run(args)
        assert code == 0, stderr
        assert statuses(result)["kubelet-wait-bootstrap"] == ("ran", True)
        node_api = CoreV1Api(node_client(rootfs))
        found = wait_for(lambda: node_api.read_node("worker-file"), timeout=30, what="Node worker-file")
        assert found.metadata.name == "worker-file"


def test_a_control_plane_dry_run_plans_every_phase_and_writes_nothing(
    cluster: tuple[Node, dict[str, Any], Any], tmp_path: Path
) -> None:
    rootfs = tmp_path / "dry-cp"
    rootfs.mkdir()
    plant_host_tools(rootfs)
    planted = files_under(rootfs)
    cfg = join_config(tmp_path, "dry-cp")
    args = join_args(cluster, rootfs, cfg, "--dry-run", "--control-plane", "--certificate-key", KEY)
    args += ["--apiserver-advertise-address", "127.0.0.2", "--ignore-preflight-errors", "all"]
    code, doc, stderr = run(args)
    assert code == 0, stderr
    plan = {s["phase"]: s for s in doc["dryRunPlan"]["plan"]}
    assert plan["control-plane-prepare/download-certs"]["wouldChange"]
    assert sorted(plan["control-plane-prepare/certs/apiserver"]["files"]) == [
        "/etc/kubernetes/pki/apiserver.crt",
        "/etc/kubernetes/pki/apiserver.key",
    ]
    assert plan["etcd-join"]["files"] == ["/etc/kubernetes/manifests/etcd.yaml"]
    etcd_pod = doc["dryRunPlan"]["manifests"]["etcd.yaml"]
    # (This test cluster's ClusterConfiguration pins cp1's etcd URLs in extraArgs, which win, as in kubeadm.)
    assert "--initial-cluster-state=existing" in etcd_pod and "--name=dry-cp" in etcd_pod
    assert plan["control-plane-prepare/control-plane/kube-apiserver"]["wouldChange"]
    assert all(s["status"] != "skipped" for s in plan.values()), [
        p for p, s in plan.items() if s["status"] == "skipped"
    ]
    assert files_under(rootfs) == planted and not (rootfs / "var/lib/kube-bootstrap").exists()


def test_a_control_plane_dry_run_with_a_wrong_certificate_key_plans_with_stand_in_shared_files(
    cluster: tuple[Node, dict[str, Any], Any], tmp_path: Path
) -> None:
    node = cluster[0]
    rootfs = tmp_path / "dry-wrong-key"
    rootfs.mkdir()
    plant_host_tools(rootfs)
    planted = files_under(rootfs)
    cfg = join_config(tmp_path, "dry-wrong-key")
    kept = tmp_path / "dry-wrong-key-out"
    args = join_args(cluster, rootfs, cfg, "--dry-run", "--control-plane", "--certificate-key", "f" * 64)
    args += ["--apiserver-advertise-address", "127.0.0.2", "--ignore-preflight-errors", "all"]
    proc = run_dry_run_keeping(args, kept, timeout=180)
    code, doc, stderr = proc.returncode, json.loads(proc.stdout), proc.stderr
    assert code == 0, stderr
    cause = "the certificate key does not decrypt Secret kube-system/kubeadm-certs"
    plan = {s["phase"]: s for s in doc["dryRunPlan"]["plan"]}
    download = plan["control-plane-prepare/download-certs"]
    assert download["status"] == "would-fail" and cause in download["wouldFail"]
    assert any(cause in w and "a real run stops here" in w for w in doc["warnings"])
    later = [p for p in plan if p.startswith(("control-plane-prepare/", "control-plane-join/"))]
    assert [p for p in later if plan[p]["status"] == "skipped"] == []
    assert plan["control-plane-prepare/certs/apiserver"]["wouldChange"]
    stand_in = doc["dryRunPlan"]["standIn"]
    assert stand_in["replaces"] == ["shared-certificates"] and cause in stand_in["reason"]
    certs = next(p for p in doc["phases"] if p["path"] == "control-plane-prepare/certs/apiserver")
    assert all("stand-in" in m.splitlines()[0] for m in certs["messages"])
    # The plan's certificates chain to the stand-in CA, which is not the cluster's.
    stand_in_ca = kept / "etc/kubernetes/pki/ca.crt"
    assert stand_in_ca.read_bytes() != (node.rootfs / "etc/kubernetes/pki/ca.crt").read_bytes()
    openssl("verify", "-CAfile", str(stand_in_ca), str(kept / "etc/kubernetes/pki/apiserver.crt"))
    assert "127.0.0.2" in " ".join(sans(kept / "etc/kubernetes/pki/apiserver.crt"))
    assert "PRIVATE KEY" not in proc.stdout + stderr and "f" * 64 not in proc.stdout + stderr
    assert files_under(rootfs) == planted and not (rootfs / "var/lib/kube-bootstrap").exists()
