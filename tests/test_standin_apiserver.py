"""The API server stand-in, driven by the official client and the real kubectl over verified TLS.

The PKI and kubeconfigs come from the product CLI; the stand-in serves with the generated apiserver
certificate and checks client certificates against the generated CA, so every call here goes through
the same TLS and identity path a real cluster would use.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from bootstrap.cli.main import main
from tests.conftest import NODE
from tests.standin.apiserver import ApiServerStandin, Store
from tests.standin.harness import free_ports
from tests.tools import tool

NS = "kube-system"


def _bootstrap(*args: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    assert exited.value.code in (0, None)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A rootfs with the product's PKI, kubeconfigs and manifests for 127.0.0.1:<free port>."""
    root = tmp_path_factory.mktemp("standin") / "rootfs"
    root.mkdir()
    port = free_ports(1)[0]
    args = ["--rootfs", str(root), "--node-name", NODE, "--advertise-address", "127.0.0.1"]
    args += ["--apiserver-bind-port", str(port)]
    for phase in ("certs", "kubeconfig", "manifests"):
        _bootstrap("phase", phase, *args)
    return root, port


@pytest.fixture
def server(cluster: tuple[Path, int]) -> Iterator[ApiServerStandin]:
    root, port = cluster
    pki = root / "etc/kubernetes/pki"
    standin = ApiServerStandin(
        host="127.0.0.1",
        port=port,
        tls_cert=pki / "apiserver.crt",
        tls_key=pki / "apiserver.key",
        client_ca=pki / "ca.crt",
    )
    standin.start()
    yield standin
    standin.stop()


@pytest.fixture
def admin_conf(cluster: tuple[Path, int]) -> Path:
    # super-admin.conf (system:masters): admin.conf has no rights until the kubeadm:cluster-admins
    # binding exists, which test_admin_conf_is_forbidden_until_its_binding_exists checks.
    return cluster[0] / "etc/kubernetes/super-admin.conf"


@pytest.fixture
def api(server: ApiServerStandin, admin_conf: Path) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(admin_conf))
    api_client.configuration.retries = False
    yield api_client
    api_client.close()


@pytest.fixture
def core(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


def _pod(name: str, labels: dict[str, str] | None = None, node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}
    if node:
        spec["nodeName"] = node
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def _names(items: list[Any]) -> list[str]:
    return sorted(i.metadata.name for i in items)


def _kubectl(admin_conf: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("kubectl"), "--kubeconfig", str(admin_conf), "--cache-dir", str(tmp_path / "kcache"), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


# -- basics -------------------------------------------------------------------------------------------
def test_version_endpoint_returns_complete_version_info(
    server: ApiServerStandin, api: client.ApiClient
) -> None:
    info = client.VersionApi(api).get_code()
    assert (info.major, info.minor, info.git_version) == ("1", "34", "v1.34.2")
    for field in ("git_commit", "git_tree_state", "build_date", "go_version", "compiler", "platform"):
        assert getattr(info, field)
    assert ("GET", "/version/", "kubernetes-super-admin") in server.request_log


def test_default_namespaces_exist(core: client.CoreV1Api) -> None:
    names = _names(core.list_namespace().items)
    assert names == ["default", "kube-node-lease", "kube-public", "kube-system"]
    assert core.read_namespace("kube-system").status.phase == "Active"


def test_configmap_create_get_list_patch_delete(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map(NS, {"metadata": {"name": "cfg"}, "data": {"a": "1"}})
    meta = created.metadata
    assert meta.uid and meta.creation_timestamp and meta.namespace == NS and int(meta.resource_version) > 0
    assert core.read_namespaced_config_map("cfg", NS).data == {"a": "1"}
    listing = core.list_namespaced_config_map(NS)
    assert [i.metadata.name for i in listing.items] == ["cfg"]
    assert int(listing.metadata.resource_version) >= int(meta.resource_version)
    patched = core.patch_namespaced_config_map("cfg", NS, {"data": {"b": "2"}})
    assert patched.data == {"a": "1", "b": "2"}
    assert int(patched.metadata.resource_version) > int(meta.resource_version)
    status = core.delete_namespaced_config_map("cfg", NS)  # the client hands a Status back as a dict
    assert (status["kind"], status["status"], status["details"]["name"]) == ("Status", "Success", "cfg")
    assert core.list_namespaced_config_map(NS).items == []


def test_duplicate_create_is_409_already_exists_and_missing_get_is_404(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "dup"}})
    with pytest.raises(ApiException) as dup:
        core.create_namespaced_config_map(NS, {"metadata": {"name": "dup"}})
    assert dup.value.status == 409
    assert json.loads(dup.value.body)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("nope", NS)
    assert missing.value.status == 404
    body = json.loads(missing.value.body)
    assert (body["kind"], body["reason"], body["message"]) == (
        "Status",
        "NotFound",
        'configmaps "nope" not found',
    )
    with pytest.raises(ApiException) as no_ns:
        core.create_namespaced_config_map("missing-ns", {"metadata": {"name": "x"}})
    assert no_ns.value.status == 404


def test_resource_versions_come_from_one_increasing_counter_and_generate_name_works(
    core: client.CoreV1Api,
) -> None:
    versions = [
        int(
            core.create_namespaced_config_map(
                NS, {"metadata": {"generateName": "gen-"}}
            ).metadata.resource_version
        ),
        int(core.create_node({"metadata": {"name": "n-rv"}}).metadata.resource_version),
        int(core.create_namespaced_secret("default", {"metadata": {"name": "s"}}).metadata.resource_version),
    ]
    assert versions == sorted(versions) and len(set(versions)) == 3
    generated = core.list_namespaced_config_map(NS).items[0].metadata.name
    assert generated.startswith("gen-") and len(generated) > len("gen-")


def test_update_with_stale_resource_version_is_409_conflict(core: client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map(NS, {"metadata": {"name": "upd"}, "data": {"v": "1"}})
    cm.data = {"v": "2"}
    assert core.replace_namespaced_config_map("upd", NS, cm).data == {"v": "2"}
    cm.data = {"v": "3"}  # still carries the first resourceVersion
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("upd", NS, cm)
    assert stale.value.status == 409 and json.loads(stale.value.body)["reason"] == "Conflict"


def test_label_and_field_selectors_filter(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, _pod("a", {"tier": "cp", "app": "x"}, node="n1"))
    core.create_namespaced_pod(NS, _pod("b", {"tier": "cp"}, node="n2"))
    core.create_namespaced_pod(NS, _pod("c", {"tier": "node"}))
    assert _names(core.list_namespaced_pod(NS, label_selector="tier=cp").items) == ["a", "b"]
    assert _names(core.list_namespaced_pod(NS, label_selector="tier=cp,app!=x").items) == ["b"]
    assert _names(core.list_namespaced_pod(NS, label_selector="app").items) == ["a"]
    assert _names(core.list_namespaced_pod(NS, label_selector="!app").items) == ["b", "c"]
    assert _names(core.list_namespaced_pod(NS, field_selector="spec.nodeName=n2").items) == ["b"]
    assert _names(core.list_namespaced_pod(NS, field_selector="metadata.name=c").items) == ["c"]
    assert _names(
        core.list_pod_for_all_namespaces(field_selector="metadata.namespace=kube-system").items
    ) == [
        "a",
        "b",
        "c",
    ]
    event = {
        "metadata": {"name": "a.1"},
        "involvedObject": {"kind": "Pod", "name": "a", "namespace": NS},
        "reason": "Started",
    }
    core.create_namespaced_event(NS, event)
    core.create_namespaced_event(
        NS, {**event, "metadata": {"name": "b.1"}, "involvedObject": {"kind": "Pod", "name": "b"}}
    )
    selected = core.list_namespaced_event(NS, field_selector="involvedObject.name=a,involvedObject.kind=Pod")
    assert _names(selected.items) == ["a.1"]
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_pod(NS, field_selector="spec.bogus=1")
    assert bad.value.status == 400


def test_status_patch_changes_status_only_and_main_patch_ignores_status(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, _pod("st"))
    patched = core.patch_namespaced_pod_status(
        "st",
        NS,
        {"metadata": {"labels": {"x": "y"}}, "spec": {"nodeName": "sneaky"}, "status": {"phase": "Running"}},
    )
    assert patched.status.phase == "Running"
    assert patched.spec.node_name is None and not patched.metadata.labels
    main_patch = core.patch_namespaced_pod(
        "st", NS, {"metadata": {"labels": {"x": "y"}}, "status": {"phase": "Failed"}}
    )
    assert main_patch.metadata.labels == {"x": "y"} and main_patch.status.phase == "Running"


def test_strategic_merge_merges_conditions_by_type_and_json_patch_applies(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, _pod("smp"))
    ready = {"type": "Ready", "status": "False"}
    core.patch_namespaced_pod_status(
        "smp", NS, {"status": {"conditions": [ready, {"type": "Initialized", "status": "True"}]}}
    )
    pod = core.patch_namespaced_pod_status(
        "smp", NS, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    )
    assert {c.type: c.status for c in pod.status.conditions} == {"Ready": "True", "Initialized": "True"}
    pod = core.patch_namespaced_pod(
        "smp",
        NS,
        [
            {"op": "add", "path": "/metadata/labels", "value": {"k": "v"}},
            {"op": "replace", "path": "/metadata/labels/k", "value": "w"},
            {"op": "add", "path": "/metadata/annotations", "value": {"gone": "soon"}},
            {"op": "remove", "path": "/metadata/annotations/gone"},
        ],
    )
    assert pod.metadata.labels == {"k": "w"} and pod.metadata.annotations == {}


def test_cluster_scoped_and_grouped_resources(api: client.ApiClient, core: client.CoreV1Api) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_cluster_role(
        {"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    )
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": "rb"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "r"},
            "subjects": [{"kind": "Group", "name": "system:nodes", "apiGroup": "rbac.authorization.k8s.io"}],
        }
    )
    assert rbac.read_cluster_role_binding("rb").role_ref.name == "r"
    rbac.create_namespaced_role(NS, {"metadata": {"name": "role"}, "rules": []})
    assert _names(rbac.list_namespaced_role(NS).items) == ["role"]
    leases = client.CoordinationV1Api(api)
    lease = leases.create_namespaced_lease(
        "kube-node-lease", {"metadata": {"name": NODE}, "spec": {"holderIdentity": NODE}}
    )
    assert lease.metadata.namespace == "kube-node-lease"
    lease.spec.lease_duration_seconds = 40
    assert leases.replace_namespaced_lease(NODE, "kube-node-lease", lease).spec.lease_duration_seconds == 40
    node = core.create_node({"metadata": {"name": "n1"}})
    assert node.metadata.namespace is None
    core.patch_node_status("n1", {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert core.read_node("n1").status.conditions[0].status == "True"
    assert core.delete_namespaced_pod is not None
    core.create_namespaced_pod(NS, _pod("gone"))
    deleted = core.delete_namespaced_pod("gone", NS, grace_period_seconds=30)
    assert deleted.metadata.name == "gone"
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod("gone", NS)
    assert missing.value.status == 404


def test_list_pagination_with_limit_and_continue(core: client.CoreV1Api) -> None:
    for i in range(5):
        core.create_namespaced_config_map("default", {"metadata": {"name": f"p{i}"}})
    first = core.list_namespaced_config_map("default", limit=2)
    assert _names(first.items) == ["p0", "p1"] and first.metadata.remaining_item_count == 3
    rest = core.list_namespaced_config_map("default", limit=10, _continue=first.metadata._continue)
    assert _names(rest.items) == ["p2", "p3", "p4"] and not rest.metadata._continue


# -- watch ---------------------------------------------------------------------------------------------
def test_watch_replays_added_modified_deleted_in_order(core: client.CoreV1Api) -> None:
    rv = core.list_namespaced_pod(NS).metadata.resource_version
    core.create_namespaced_pod(NS, _pod("w", {"app": "w"}))
    core.patch_namespaced_pod_status("w", NS, {"status": {"phase": "Running"}})
    core.delete_namespaced_pod("w", NS)
    core.create_namespaced_pod("default", _pod("elsewhere"))  # another namespace: not seen
    seen = []
    started = time.monotonic()
    for event in watch.Watch().stream(core.list_namespaced_pod, NS, resource_version=rv, timeout_seconds=1):
        seen.append((event["type"], event["object"].metadata.name, event["object"].status.phase))
    assert seen == [("ADDED", "w", "Pending"), ("MODIFIED", "w", "Running"), ("DELETED", "w", "Running")]
    assert 0.8 < time.monotonic() - started < 2.5, "timeoutSeconds ends the stream at the deadline"


def test_watch_streams_live_events_after_current_objects(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, _pod("existing"))

    def later() -> None:
        time.sleep(0.2)
        core.create_namespaced_pod(NS, _pod("live"))
        core.patch_namespaced_pod("live", NS, {"metadata": {"labels": {"x": "1"}}})

    writer = threading.Thread(target=later)
    writer.start()
    seen = []
    for event in watch.Watch().stream(core.list_namespaced_pod, NS, timeout_seconds=3):
        seen.append((event["type"], event["object"].metadata.name))
        if len(seen) == 3:
            break
    writer.join()
    assert seen == [("ADDED", "existing"), ("ADDED", "live"), ("MODIFIED", "live")]


def test_watch_applies_label_selector_with_enter_and_leave_events(core: client.CoreV1Api) -> None:
    rv = core.list_namespaced_pod(NS).metadata.resource_version
    core.create_namespaced_pod(NS, _pod("sel"))
    core.patch_namespaced_pod("sel", NS, {"metadata": {"labels": {"watched": "yes"}}})
    core.patch_namespaced_pod("sel", NS, {"metadata": {"labels": {"watched": "no"}}})
    stream = watch.Watch().stream(
        core.list_namespaced_pod, NS, resource_version=rv, label_selector="watched=yes", timeout_seconds=5
    )
    assert [next(stream)["type"], next(stream)["type"]] == ["ADDED", "DELETED"]
    stream.close()


def test_watch_from_compacted_resource_version_is_410_gone(
    server: ApiServerStandin, core: client.CoreV1Api
) -> None:
    old = core.list_namespaced_pod(NS).metadata.resource_version
    core.create_namespaced_pod(NS, _pod("x"))
    server.expire_watch_history()
    # The server sends 200 + an ERROR event carrying a 410 Status; the client turns it into ApiException.
    with pytest.raises(ApiException) as expired:
        list(watch.Watch().stream(core.list_namespaced_pod, NS, resource_version=old, timeout_seconds=1))
    assert expired.value.status == 410 and "Expired" in str(expired.value.reason)
    raw = core.list_namespaced_pod(
        NS, watch=True, resource_version=old, timeout_seconds=1, _preload_content=False
    )
    event = json.loads(raw.data.splitlines()[0])
    assert event["type"] == "ERROR"
    assert (event["object"]["kind"], event["object"]["code"], event["object"]["reason"]) == (
        "Status",
        410,
        "Expired",
    )
    with pytest.raises(ApiException) as listed:
        core.list_namespaced_pod(NS, resource_version=old)
    assert listed.value.status == 410
    # From the current resourceVersion on, watching works again.
    current = core.list_namespaced_pod(NS).metadata.resource_version
    core.create_namespaced_pod(NS, _pod("after"))
    resumed = watch.Watch().stream(core.list_namespaced_pod, NS, resource_version=current, timeout_seconds=5)
    event = next(resumed)
    resumed.close()
    assert (event["type"], event["object"].metadata.name) == ("ADDED", "after")


def _watch_in_background(core: client.CoreV1Api) -> tuple[threading.Thread, list[str]]:
    """A client watch on kube-system in a thread; ``outcome`` gets "ended" or the exception's name."""
    outcome: list[str] = []

    def consume() -> None:
        try:
            for _ in watch.Watch().stream(core.list_namespaced_pod, NS, timeout_seconds=30):
                pass
            outcome.append("ended")
        except (HTTPError, OSError) as exc:
            outcome.append(type(exc).__name__)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    time.sleep(0.3)
    return reader, outcome


def test_drop_watches_breaks_open_streams(server: ApiServerStandin, core: client.CoreV1Api) -> None:
    reader, outcome = _watch_in_background(core)
    started = time.monotonic()
    server.drop_watches()
    reader.join(timeout=5)
    assert not reader.is_alive() and time.monotonic() - started < 2
    # No clean end of the chunked stream: urllib3 reports the broken response, as for a real drop.
    assert outcome == ["ProtocolError"]
    assert core.list_namespaced_pod(NS).items == []  # the server itself is still up


# -- lifecycle and security -------------------------------------------------------------------------------
def test_restart_keeps_objects_and_down_time_is_a_connection_error(
    server: ApiServerStandin, core: client.CoreV1Api
) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "durable"}})
    server.stop()
    with pytest.raises((HTTPError, OSError)):
        core.list_namespaced_config_map(NS, _request_timeout=2)
    server.start()
    assert core.read_namespaced_config_map("durable", NS).metadata.name == "durable"


def test_anonymous_is_forbidden_except_health_version_and_cluster_info(
    server: ApiServerStandin, cluster: tuple[Path, int], core: client.CoreV1Api
) -> None:
    core.create_namespaced_config_map(
        "kube-public", {"metadata": {"name": "cluster-info"}, "data": {"k": "v"}}
    )
    configuration = client.Configuration()
    configuration.host = server.url
    configuration.ssl_ca_cert = str(cluster[0] / "etc/kubernetes/pki/ca.crt")
    configuration.retries = False
    with client.ApiClient(configuration) as anonymous:
        anon = client.CoreV1Api(anonymous)
        with pytest.raises(ApiException) as forbidden:
            anon.list_namespaced_pod(NS)
        assert forbidden.value.status == 403
        assert (
            'User "system:anonymous" cannot list resource "pods"'
            in json.loads(forbidden.value.body)["message"]
        )
        assert anon.read_namespaced_config_map("cluster-info", "kube-public").data == {"k": "v"}
        assert client.VersionApi(anonymous).get_code().git_version == "v1.34.2"
        body = anonymous.call_api("GET", f"{server.url}/readyz?verbose").read().decode()
        assert body.endswith("readyz check passed\n")
    assert ("GET", "/api/v1/namespaces/kube-system/pods", "system:anonymous") in server.request_log


def test_client_cert_from_another_ca_fails_the_tls_handshake(
    server: ApiServerStandin, cluster: tuple[Path, int], tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    _bootstrap(
        "phase", "certs", "--rootfs", str(other), "--node-name", NODE, "--advertise-address", "127.0.0.1"
    )
    context = ssl.create_default_context(cafile=str(cluster[0] / "etc/kubernetes/pki/ca.crt"))
    foreign = other / "etc/kubernetes/pki"
    context.load_cert_chain(
        str(foreign / "apiserver-kubelet-client.crt"), str(foreign / "apiserver-kubelet-client.key")
    )
    # With TLS 1.3 the client learns of the rejection on its first read, not in wrap_socket().
    with (
        pytest.raises((ssl.SSLError, ConnectionError)),
        socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        if not tls.recv(100):
            raise ConnectionError("closed without an answer")
    assert all(path != "/livez" for _, path, _ in server.request_log)


def test_request_log_records_client_identity_and_separates_health(
    server: ApiServerStandin, core: client.CoreV1Api, cluster: tuple[Path, int]
) -> None:
    kubelet_api = config.new_client_from_config(config_file=str(cluster[0] / "etc/kubernetes/kubelet.conf"))
    with kubelet_api:
        client.CoreV1Api(kubelet_api).list_node()
    core.api_client.call_api("GET", f"{server.url}/livez")
    assert ("GET", "/api/v1/nodes", f"system:node:{NODE}") in server.request_log
    assert ("GET", "/livez", "kubernetes-super-admin") in server.request_log
    assert all(not path.startswith("/livez") for _, path, _ in server.api_requests())


def test_from_manifest_reads_the_apiserver_flags(cluster: tuple[Path, int]) -> None:
    root, port = cluster
    pod = yaml.safe_load((root / "etc/kubernetes/manifests/kube-apiserver.yaml").read_text())
    standin = ApiServerStandin.from_manifest(pod, root, store=Store())
    assert (standin.host, standin.port, standin.url) == ("127.0.0.1", port, f"https://127.0.0.1:{port}")
    assert standin.tls_cert == root / "etc/kubernetes/pki/apiserver.crt"
    assert standin.client_ca == root / "etc/kubernetes/pki/ca.crt"
    with standin:
        api_client = config.new_client_from_config(config_file=str(root / "etc/kubernetes/super-admin.conf"))
        with api_client:
            assert client.CoreV1Api(api_client).read_namespace("default").metadata.name == "default"


def test_kubectl_get_pods_nodes_and_raw_livez(
    core: client.CoreV1Api, admin_conf: Path, tmp_path: Path
) -> None:
    core.create_namespaced_pod(NS, _pod("kube-apiserver-cp1", node=NODE))
    core.create_node({"metadata": {"name": NODE, "labels": {"node-role.kubernetes.io/control-plane": ""}}})
    pods = _kubectl(admin_conf, tmp_path, "get", "pods", "-n", NS, "-o", "name")
    assert pods.returncode == 0, pods.stderr
    assert pods.stdout.split() == ["pod/kube-apiserver-cp1"]
    table = _kubectl(admin_conf, tmp_path, "get", "pods", "-n", NS)
    assert table.returncode == 0, table.stderr
    assert table.stdout.split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    nodes = _kubectl(admin_conf, tmp_path, "get", "nodes")
    assert nodes.returncode == 0, nodes.stderr
    assert nodes.stdout.splitlines()[1].split()[:3] == [NODE, "Unknown", "control-plane"]
    livez = _kubectl(admin_conf, tmp_path, "get", "--raw", "/livez")
    assert (livez.returncode, livez.stdout.strip()) == (0, "ok")


def test_kubectl_get_watch_prints_table_rows_for_live_changes(
    core: client.CoreV1Api, admin_conf: Path, tmp_path: Path
) -> None:
    core.create_namespaced_pod(NS, _pod("watched"))
    timer = threading.Timer(
        0.5, core.patch_namespaced_pod_status, ("watched", NS, {"status": {"phase": "Running"}})
    )
    timer.start()
    watched = _kubectl(admin_conf, tmp_path, "get", "pods", "-n", NS, "-w", "--request-timeout=1500ms")
    timer.join()
    assert watched.returncode == 0, watched.stderr
    rows = [line.split()[:3] for line in watched.stdout.splitlines()]
    assert rows == [["NAME", "READY", "STATUS"], ["watched", "0/1", "Pending"], ["watched", "0/1", "Running"]]


def test_stop_is_prompt_and_leaves_no_server_threads(
    server: ApiServerStandin, core: client.CoreV1Api
) -> None:
    core.list_namespace()  # leaves an idle keep-alive connection in the client's pool
    reader, _ = _watch_in_background(core)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.5
    reader.join(timeout=2)
    assert not reader.is_alive(), "the open watch ended with the server"
    assert not [t for t in threading.enumerate() if t.name.startswith("apiserver-standin")]
    server.start()


def test_rejected_request_with_a_body_keeps_the_connection_usable(
    server: ApiServerStandin, cluster: tuple[Path, int]
) -> None:
    context = ssl.create_default_context(cafile=str(cluster[0] / "etc/kubernetes/pki/ca.crt"))
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=5)
    body = json.dumps({"metadata": {"name": "x"}})
    conn.request("POST", "/api/v1/namespaces/default/configmaps", body, {"Content-Type": "application/json"})
    forbidden = conn.getresponse()
    assert (forbidden.status, json.loads(forbidden.read())["reason"]) == (403, "Forbidden")
    conn.request("GET", "/livez")  # the same connection: the unread body must not leak into it
    ok = conn.getresponse()
    assert (ok.status, ok.read()) == (200, b"ok")
    conn.close()


def test_finalizers_delay_deletion_and_namespace_delete_removes_its_objects(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "team"}})
    core.create_namespaced_config_map(
        "team", {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    )
    core.create_namespaced_config_map("team", {"metadata": {"name": "free"}})
    core.delete_namespaced_config_map("held", "team")
    held = core.read_namespaced_config_map("held", "team")
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("held", "team", {"metadata": {"finalizers": None}})
    assert _names(core.list_namespaced_config_map("team").items) == ["free"]
    core.delete_namespace("team")
    assert core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=team").items == []
    assert "team" not in _names(core.list_namespace().items)


def test_admin_conf_is_forbidden_until_its_binding_exists(
    server: ApiServerStandin, cluster: tuple[Path, int], api: client.ApiClient
) -> None:
    admin = config.new_client_from_config(config_file=str(cluster[0] / "etc/kubernetes/admin.conf"))
    admin.configuration.retries = False
    try:
        with pytest.raises(client.ApiException) as denied:
            client.CoreV1Api(admin).list_namespace()
        assert denied.value.status == 403
        client.RbacAuthorizationV1Api(api).create_cluster_role_binding(
            {
                "metadata": {"name": "kubeadm:cluster-admins"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "cluster-admin",
                },
                "subjects": [
                    {
                        "kind": "Group",
                        "name": "kubeadm:cluster-admins",
                        "apiGroup": "rbac.authorization.k8s.io",
                    }
                ],
            }
        )
        assert client.CoreV1Api(admin).list_namespace().items
    finally:
        admin.close()
