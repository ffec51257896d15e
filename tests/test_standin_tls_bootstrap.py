"""The kubelet stand-in's own TLS bootstrap against a cluster made by a real ``bootstrap init``.

A second node gets only a ``bootstrap-kubelet.conf`` (written here, from init's token, as join will
write it); its stand-in kubelet must get a client certificate through a CSR, write ``kubelet.conf``
and register its Node as ``system:node:<name>``. A deleted or expired token must stop it with one
clear log line and nothing written.
"""

from __future__ import annotations

import base64
import datetime
import logging
import os
import re
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client import CertificatesV1Api, CoreV1Api, V1ObjectMeta, V1Secret

from tests.standin.harness import admin_client, kubelet_once_configured
from tests.standin.kubelet import KubeletStandin
from tests.standin.tls_bootstrap import map_file_refs, resolve_in_rootfs
from tests.test_init_e2e import Node, make_node, run_init
from tests.tools import wait_for

TOKEN_TYPE = "bootstrap.kubernetes.io/token"
CURRENT_PEM = "/var/lib/kubelet/pki/kubelet-client-current.pem"
REFUSED = "refused the bootstrap token"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, Any, str]]:
    """Init's node with its kubelet running, the API stand-in, and init's bootstrap token."""
    node = make_node(tmp_path_factory.mktemp("tls-bootstrap"))
    with kubelet_once_configured(node.rootfs) as state:
        code, _, stderr = run_init(node)
        assert code == 0, stderr
        core = CoreV1Api(admin_client(node.rootfs))
        secrets = [s for s in core.list_namespaced_secret("kube-system").items if s.type == TOKEN_TYPE]
        assert len(secrets) == 1, [s.metadata.name for s in secrets]  # init made exactly one
        token = ".".join(base64.b64decode(secrets[0].data[k]).decode() for k in ("token-id", "token-secret"))
        yield node, state["kubelet"].api, token


def worker_rootfs(tmp_path: Path, node: Node, api: Any, name: str, token: str) -> Path:
    """A node with nothing but a bootstrap kubeconfig, its kubelet config and its node name."""
    rootfs = tmp_path / name
    conf = rootfs / "etc/kubernetes/bootstrap-kubelet.conf"
    conf.parent.mkdir(parents=True)
    ca = (node.rootfs / "etc/kubernetes/pki/ca.crt").read_bytes()
    conf.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "kubernetes",
                        "cluster": {
                            "server": api.url,
                            "certificate-authority-data": base64.b64encode(ca).decode(),
                        },
                    }
                ],
                "contexts": [
                    {"name": "tls-bootstrap", "context": {"cluster": "kubernetes", "user": "bootstrapper"}}
                ],
                "current-context": "tls-bootstrap",
                "users": [{"name": "bootstrapper", "user": {"token": token}}],
            }
        )
    )
    conf.chmod(0o600)
    kubelet_dir = rootfs / "var/lib/kubelet"
    kubelet_dir.mkdir(parents=True)
    # healthzPort 0: no listener, so the test never meets another kubelet's port.
    (kubelet_dir / "config.yaml").write_text(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
        "staticPodPath: /etc/kubernetes/manifests\nhealthzPort: 0\n"
    )
    (kubelet_dir / "kubeadm-flags.env").write_text(f'KUBELET_KUBEADM_ARGS="--hostname-override={name}"\n')
    return rootfs


def add_token(api: Any, node: Node, token_id: str, expires: datetime.datetime) -> str:
    secret = "0123456789abcdef"
    CoreV1Api(admin_client(node.rootfs)).create_namespaced_secret(
        "kube-system",
        V1Secret(
            metadata=V1ObjectMeta(name=f"bootstrap-token-{token_id}"),
            type=TOKEN_TYPE,
            string_data={
                "token-id": token_id,
                "token-secret": secret,
                "expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "usage-bootstrap-authentication": "true",
                "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
            },
        ),
    )
    return f"{token_id}.{secret}"


def openssl(*args: str) -> str:
    proc = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_the_kubelet_bootstraps_its_client_certificate_with_inits_token(
    cluster: tuple[Node, Any, str], tmp_path: Path
) -> None:
    node, api, token = cluster
    name = "tls-worker-1"
    rootfs = worker_rootfs(tmp_path, node, api, name, token)
    manifests = rootfs / "etc/kubernetes/manifests"
    manifests.mkdir(parents=True)
    (manifests / "hello.yaml").write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: hello, namespace: kube-system}\n"
        "spec: {containers: [{name: hello, image: registry.k8s.io/pause:3.10}]}\n"
    )
    with KubeletStandin(rootfs, rescan_interval=0.1) as kubelet:
        wait_for(lambda: (rootfs / "etc/kubernetes/kubelet.conf").exists(), timeout=30, what="kubelet.conf")
        admin_core = CoreV1Api(admin_client(node.rootfs))
        wait_for(lambda: admin_core.read_node(name), timeout=30, what=f"Node {name}")
        mirror = wait_for(
            lambda: admin_core.read_namespaced_pod(f"hello-{name}", "kube-system"),
            timeout=30,
            what="mirror pod",
        )
        assert mirror.spec.node_name == name
        # Its status is written by the node itself (the creating POST names no pod, so it is not used).
        mirror_path = f"/api/v1/namespaces/kube-system/pods/hello-{name}"
        wait_for(
            lambda: any(r[0] != "GET" and r[1].startswith(mirror_path) for r in api.request_log),
            timeout=15,
            what="a mirror pod status write",
        )
        writers = {r[2] for r in api.request_log if r[0] != "GET" and r[1].startswith(mirror_path)}
        assert writers == {f"system:node:{name}"}
        assert kubelet.bootstrap_error is None

        # The files, as the real kubelet leaves them: a dated PEM (0600) and an absolute link to it.
        pki = rootfs / "var/lib/kubelet/pki"
        pems = [p for p in pki.iterdir() if re.fullmatch(r"kubelet-client-\d{4}(-\d\d){5}\.pem", p.name)]
        assert len(pems) == 1, sorted(p.name for p in pki.iterdir())
        assert stat.S_IMODE(pems[0].stat().st_mode) == 0o600
        link = pki / "kubelet-client-current.pem"
        assert link.is_symlink() and os.readlink(link) == f"/var/lib/kubelet/pki/{pems[0].name}"
        assert resolve_in_rootfs(rootfs, CURRENT_PEM) == pems[0]

        # openssl: chains to the cluster CA, the node's subject, client auth, a P-256 key that matches.
        ca = node.rootfs / "etc/kubernetes/pki/ca.crt"
        assert openssl("verify", "-CAfile", str(ca), str(pems[0])).strip() == f"{pems[0]}: OK"
        subject = openssl("x509", "-in", str(pems[0]), "-noout", "-subject", "-nameopt", "RFC2253")
        assert subject.strip() == f"subject=CN=system:node:{name},O=system:nodes"
        usages = openssl("x509", "-in", str(pems[0]), "-noout", "-ext", "keyUsage,extendedKeyUsage")
        assert "Digital Signature" in usages and "TLS Web Client Authentication" in usages
        assert "prime256v1" in openssl("pkey", "-in", str(pems[0]), "-noout", "-text")
        cert_pub = openssl("x509", "-in", str(pems[0]), "-noout", "-pubkey")
        assert cert_pub == openssl("pkey", "-in", str(pems[0]), "-pubout")

        # kubelet.conf: the bootstrap kubeconfig's server and CA, the current PEM as cert and key.
        conf = yaml.safe_load((rootfs / "etc/kubernetes/kubelet.conf").read_text())
        boot = yaml.safe_load((rootfs / "etc/kubernetes/bootstrap-kubelet.conf").read_text())
        assert [c["cluster"] for c in conf["clusters"]] == [boot["clusters"][0]["cluster"]]
        assert [u["user"] for u in conf["users"]] == [
            {"client-certificate": CURRENT_PEM, "client-key": CURRENT_PEM}
        ]
        assert stat.S_IMODE((rootfs / "etc/kubernetes/kubelet.conf").stat().st_mode) == 0o600

        # The CSR came from the bootstrap token's user, for the kubelet signer, and was approved.
        token_id = token.split(".")[0]
        csrs = [
            c
            for c in CertificatesV1Api(admin_client(node.rootfs)).list_certificate_signing_request().items
            if c.spec.username == f"system:bootstrap:{token_id}"
        ]
        assert len(csrs) == 1
        assert csrs[0].spec.signer_name == "kubernetes.io/kube-apiserver-client-kubelet"
        assert csrs[0].spec.usages == ["digital signature", "client auth"]
        assert [c.type for c in csrs[0].status.conditions] == ["Approved"]

        # The official client with kubelet.conf is the node; the kubelet registered its Node as it.
        data = yaml.safe_load((rootfs / "etc/kubernetes/kubelet.conf").read_text())
        map_file_refs(data, rootfs)
        cfg = client.Configuration()
        cfg.retries = False
        node_client = config.new_client_from_config_dict(  # type: ignore[no-untyped-call]
            data, client_configuration=cfg, persist_config=False
        )
        api.request_log.clear()
        assert CoreV1Api(node_client).read_node(name).metadata.name == name
        assert ("GET", f"/api/v1/nodes/{name}", f"system:node:{name}") in api.request_log
        wait_for(
            lambda: any(
                r[0] in ("PATCH", "PUT") and r[1].startswith(f"/api/v1/nodes/{name}") for r in api.request_log
            ),
            timeout=15,
            what="a node status update",
        )
        node_writes = {r[2] for r in api.request_log if r[1].startswith(f"/api/v1/nodes/{name}")}
        assert node_writes == {f"system:node:{name}"}


def _refused(
    kubelet: KubeletStandin, rootfs: Path, caplog: pytest.LogCaptureFixture
) -> list[logging.LogRecord]:
    """Wait for the refusal; after a few retries, return the log lines saying so."""
    wait_for(lambda: kubelet.bootstrap_error, timeout=30, what="the bootstrap to fail")
    time.sleep(2.5)  # retried at least twice more: the cause is still logged once
    assert kubelet.bootstrap_error is not None and REFUSED in kubelet.bootstrap_error
    assert not (rootfs / "etc/kubernetes/kubelet.conf").exists()
    assert not (rootfs / "var/lib/kubelet/pki").exists()
    return [r for r in caplog.records if REFUSED in r.getMessage()]


def test_a_deleted_token_fails_the_bootstrap_with_one_clear_line_and_writes_nothing(
    cluster: tuple[Node, Any, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node, api, _ = cluster
    caplog.set_level(logging.WARNING, logger="tests.standin.kubelet")
    token = add_token(api, node, "gone01", api.now() + datetime.timedelta(hours=1))
    rootfs = worker_rootfs(tmp_path, node, api, "tls-worker-gone", token)
    CoreV1Api(admin_client(node.rootfs)).delete_namespaced_secret("bootstrap-token-gone01", "kube-system")
    with KubeletStandin(rootfs, rescan_interval=0.1) as kubelet:
        lines = _refused(kubelet, rootfs, caplog)
    assert len(lines) == 1, [r.getMessage() for r in lines]
    message = lines[0].getMessage()
    assert "\n" not in message and "tls-worker-gone" in message and "401 Unauthorized" in message
    assert "unknown, expired or deleted" in message and token.split(".")[1] not in message


def test_an_expired_token_fails_the_bootstrap_the_same_way(
    cluster: tuple[Node, Any, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node, api, _ = cluster
    caplog.set_level(logging.WARNING, logger="tests.standin.kubelet")
    expires = api.now() + datetime.timedelta(seconds=2)
    token = add_token(api, node, "late01", expires)
    rootfs = worker_rootfs(tmp_path, node, api, "tls-worker-late", token)
    while api.now() <= expires + datetime.timedelta(seconds=1):  # expired on the stand-in's clock
        time.sleep(0.2)
    with KubeletStandin(rootfs, rescan_interval=0.1) as kubelet:
        lines = _refused(kubelet, rootfs, caplog)
    assert len(lines) == 1, [r.getMessage() for r in lines]
    assert "tls-worker-late" in lines[0].getMessage()
