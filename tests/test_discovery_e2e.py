"""Token discovery against the stand-ins after a real ``bootstrap init``: the cluster-info init wrote,
signed by the stand-in's bootstrap signer, pinned with the hash init printed."""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import CoreV1Api, V1ObjectMeta, V1Secret

from bootstrap.cluster.discovery import DiscoveryError, TokenDiscovery, discover_token
from tests.standin.harness import admin_client, kubelet_once_configured
from tests.test_init_e2e import Node, make_node, run_init


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, dict[str, Any], Any]]:
    node = make_node(tmp_path_factory.mktemp("discovery-e2e"))
    with kubelet_once_configured(node.rootfs) as state:
        code, doc, stderr = run_init(node)
        assert code == 0, stderr
        yield node, doc, state["kubelet"].api


def _join_details(doc: dict[str, Any]) -> dict[str, Any]:
    details: dict[str, Any] = next(p for p in doc["phases"] if p["path"] == "show-join-command")["details"]
    return details


def _init_token(node: Node) -> str:
    core = CoreV1Api(admin_client(node.rootfs))
    secret = next(
        s
        for s in core.list_namespaced_secret("kube-system").items
        # init's token (the tests here add others)
        if s.type == "bootstrap.kubernetes.io/token" and s.metadata.name != "bootstrap-token-newtok"
    )
    return ".".join(base64.b64decode(secret.data[k]).decode() for k in ("token-id", "token-secret"))


def test_discovery_trusts_the_cluster_init_made_with_the_hash_init_printed(
    cluster: tuple[Node, dict[str, Any], Any],
) -> None:
    node, doc, api = cluster
    token = _init_token(node)
    api.request_log.clear()
    found = discover_token(
        TokenDiscovery(
            endpoint=f"127.0.0.1:{api.port}",
            token=token,
            ca_cert_hashes=(_join_details(doc)["caCertHash"],),
            timeout=30,
        )
    )
    assert found.ca_pem == (node.rootfs / "etc/kubernetes/pki/ca.crt").read_bytes()
    assert found.server == api.url
    anonymous = [
        r
        for r in api.request_log
        if r[1].startswith("/api/v1/namespaces/kube-public/configmaps/cluster-info")
    ]
    # At least two reads (unverified, then verified TLS; one more while the signer had not signed
    # yet), all anonymous: the token never reached the server.
    users = [user for _, _, user in anonymous]
    assert len(users) >= 2 and set(users) == {"system:anonymous"}, users


def test_a_token_made_after_init_is_usable_once_the_signer_has_signed_with_it(
    cluster: tuple[Node, dict[str, Any], Any],
) -> None:
    node, doc, api = cluster
    core = CoreV1Api(admin_client(node.rootfs))
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    core.create_namespaced_secret(
        "kube-system",
        V1Secret(
            metadata=V1ObjectMeta(name="bootstrap-token-newtok"),
            type="bootstrap.kubernetes.io/token",
            string_data={
                "token-id": "newtok",
                "token-secret": "0123456789abcdef",
                "expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "usage-bootstrap-authentication": "true",
                "usage-bootstrap-signing": "true",
            },
        ),
    )
    said: list[str] = []
    found = discover_token(
        TokenDiscovery(
            endpoint=f"127.0.0.1:{api.port}",
            token="newtok.0123456789abcdef",
            ca_cert_hashes=(_join_details(doc)["caCertHash"],),
            timeout=30,
        ),
        progress=said.append,
    )
    assert found.server == api.url
    assert any("no signature for token id 'newtok' yet" in s for s in said)  # it did have to wait


def test_a_wrong_hash_or_an_unknown_token_is_refused_with_the_fix(
    cluster: tuple[Node, dict[str, Any], Any],
) -> None:
    node, doc, api = cluster
    real_hash = _join_details(doc)["caCertHash"]
    with pytest.raises(DiscoveryError) as caught:
        discover_token(
            TokenDiscovery(
                endpoint=f"127.0.0.1:{api.port}",
                token=_init_token(node),
                ca_cert_hashes=("sha256:" + "0" * 64,),
                timeout=30,
            )
        )
    assert caught.value.cause == "ca-mismatch" and real_hash in str(caught.value)
    with pytest.raises(DiscoveryError) as caught:
        discover_token(
            TokenDiscovery(
                endpoint=f"127.0.0.1:{api.port}",
                token="nosuch.0123456789abcdef",
                ca_cert_hashes=(real_hash,),
                timeout=2,
            )
        )
    assert caught.value.cause == "token-unknown"
    assert "bootstrap token create --print-join-command" in str(caught.value)


def test_discovery_of_an_endpoint_nobody_listens_on_names_it(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DiscoveryError) as caught:
        discover_token(
            TokenDiscovery(
                endpoint=f"127.0.0.1:{port}",
                token="abcdef.0123456789abcdef",
                ca_cert_hashes=("sha256:" + "0" * 64,),
                timeout=1,
            )
        )
    assert caught.value.cause == "unreachable" and f"127.0.0.1:{port}" in str(caught.value)
