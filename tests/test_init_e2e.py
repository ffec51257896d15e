"""`bootstrap init` end to end against the kubelet and API server stand-ins, plus reset and locking.

init runs as a subprocess, exactly as a user runs it; the kubelet stand-in starts once kubelet-start
has written its config (as systemd would restart the real kubelet), and brings the API server up by
running the kube-apiserver manifest.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client import CoreV1Api

from bootstrap.host.fs import Rootfs
from bootstrap.host.ledger import run_lock
from tests.conftest import files_under
from tests.standin.harness import (
    admin_client,
    allocate_ports,
    bootstrap_command,
    init_config,
    kubelet_once_configured,
)
from tests.tools import tool, unprivileged_runtime

PHASES_WITHOUT_CHANGES = {"preflight", "wait-control-plane", "show-join-command"}


@dataclass
class Node:
    rootfs: Path
    config: Path

    def init_args(self, *extra: str) -> list[str]:
        return [*bootstrap_command(self.rootfs, self.config, "init"), "--timeout", "30s", *extra]


def make_node(tmp_path: Path, with_host_tools: bool = True) -> Node:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    config = tmp_path / "kubeadm.yaml"
    # failSwapOn: false keeps the Swap check quiet on machines with swap (the CI box may have some).
    config.write_text(init_config(allocate_ports()) + "failSwapOn: false\n")
    if with_host_tools:
        plant_host_tools(rootfs)
    return Node(rootfs, config)


def plant_host_tools(rootfs: Path) -> list[str]:
    """A kubelet binary and a listening CRI socket, which preflight looks for under the rootfs."""
    kubelet = rootfs / "usr/bin/kubelet"
    kubelet.parent.mkdir(parents=True)
    kubelet.write_text("#!/bin/sh\nexit 0\n")
    kubelet.chmod(0o755)
    sock_path = rootfs / "var/run/containerd/containerd.sock"
    sock_path.parent.mkdir(parents=True)
    sock = socket.socket(socket.AF_UNIX)
    # Bound by its name from its directory: a full path under pytest's temp dir (deeper under an xdist
    # worker) can pass the 108 bytes AF_UNIX allows.
    with contextlib.chdir(sock_path.parent):
        sock.bind(sock_path.name)
    sock.listen()
    _SOCKETS.append(sock)
    return ["usr/bin/kubelet", "var/run/containerd/containerd.sock"]


_SOCKETS: list[socket.socket] = []


def run_init(node: Node, *extra: str) -> tuple[int, dict[str, Any], str]:
    proc = subprocess.run(node.init_args(*extra), capture_output=True, text=True, timeout=180)
    doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return proc.returncode, doc, proc.stderr


def statuses(doc: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    return {p["path"]: (p["status"], p["changed"]) for p in doc["phases"]}


@pytest.fixture
def initialized(tmp_path: Path) -> Iterator[tuple[Node, dict[str, Any], dict[str, Any]]]:
    node = make_node(tmp_path)
    with kubelet_once_configured(node.rootfs) as state:
        code, doc, stderr = run_init(node)
        assert code == 0, stderr
        yield node, doc, state


def test_full_init_changes_every_writing_phase_and_configures_the_cluster(
    initialized: tuple[Node, dict[str, Any], dict[str, Any]],
) -> None:
    node, doc, _ = initialized
    ran = statuses(doc)
    # Only asked for with --upload-certs (tests/test_upload_certs.py), as kubeadm's.
    assert ran.pop("upload-certs") == ("skipped", False)
    for path, (status, changed) in ran.items():
        assert status == "ran", path
        assert changed is (path.split("/")[0] not in PHASES_WITHOUT_CHANGES), path
    core = CoreV1Api(admin_client(node.rootfs))
    cp1 = core.read_node("cp1")
    assert cp1.metadata.labels["node-role.kubernetes.io/control-plane"] == ""
    assert "node.kubernetes.io/exclude-from-external-load-balancers" in cp1.metadata.labels
    assert [(t.key, t.effect) for t in cp1.spec.taints] == [
        ("node-role.kubernetes.io/control-plane", "NoSchedule")
    ]
    kubeadm_config = core.read_namespaced_config_map("kubeadm-config", "kube-system")
    assert "kind: ClusterConfiguration" in kubeadm_config.data["ClusterConfiguration"]
    kubelet_config = core.read_namespaced_config_map("kubelet-config", "kube-system")
    assert kubelet_config.data["kubelet"] == (node.rootfs / "var/lib/kubelet/config.yaml").read_text()
    secrets = core.list_namespaced_secret("kube-system").items
    tokens = [s for s in secrets if s.type == "bootstrap.kubernetes.io/token"]
    assert len(tokens) == 1
    token_id = base64.b64decode(tokens[0].data["token-id"]).decode()
    assert tokens[0].metadata.name == f"bootstrap-token-{token_id}"
    assert base64.b64decode(tokens[0].data["usage-bootstrap-authentication"]) == b"true"


def test_phase_messages_read_as_text(initialized: tuple[Node, dict[str, Any], dict[str, Any]]) -> None:
    _, doc, _ = initialized
    messages = {p["path"]: p["messages"] for p in doc["phases"]}
    assert messages["mark-control-plane"] == [
        "Marked node cp1 as control-plane: labels node-role.kubernetes.io/control-plane, "
        "node.kubernetes.io/exclude-from-external-load-balancers; "
        "taints node-role.kubernetes.io/control-plane:NoSchedule"
    ]
    # No Python list, tuple or None in any message.
    assert not [m for ms in messages.values() for m in ms if re.search(r"\['|'\]|\('|\bNone\b", m)]


def test_admin_conf_gets_its_cluster_admin_binding_through_super_admin_conf(
    initialized: tuple[Node, dict[str, Any], dict[str, Any]],
) -> None:
    _, _, state = initialized
    log = list(state["kubelet"].api.request_log)
    # admin.conf was refused (403) until super-admin.conf created the kubeadm:cluster-admins binding.
    assert ("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", "kubernetes-super-admin") in log
    users = {user for _, path, user in log if "/pods" in path}
    assert users == {"kubernetes-admin", "system:node:cp1"}


def test_cluster_info_is_readable_anonymously(
    initialized: tuple[Node, dict[str, Any], dict[str, Any]],
) -> None:
    node, _, state = initialized
    api = state["kubelet"].api
    context = ssl.create_default_context(cafile=str(node.rootfs / "etc/kubernetes/pki/ca.crt"))
    url = f"{api.url}/api/v1/namespaces/kube-public/configmaps/cluster-info"
    with urllib.request.urlopen(url, context=context, timeout=5) as response:  # no client certificate
        body = json.loads(response.read())
    kubeconfig = body["data"]["kubeconfig"]
    ca_data = base64.b64encode((node.rootfs / "etc/kubernetes/pki/ca.crt").read_bytes()).decode()
    assert ca_data in kubeconfig and api.url in kubeconfig


def test_join_command_hash_matches_openssl(initialized: tuple[Node, dict[str, Any], dict[str, Any]]) -> None:
    node, doc, _ = initialized
    details = next(p for p in doc["phases"] if p["path"] == "show-join-command")["details"]
    ca = str(node.rootfs / "etc/kubernetes/pki/ca.crt")
    pubkey = subprocess.run(
        [tool("openssl"), "x509", "-pubkey", "-noout", "-in", ca], capture_output=True, check=True
    ).stdout
    der = subprocess.run(
        [tool("openssl"), "pkey", "-pubin", "-outform", "der"], input=pubkey, capture_output=True, check=True
    ).stdout
    digest = (
        subprocess.run(
            [tool("openssl"), "dgst", "-sha256", "-hex"], input=der, capture_output=True, check=True
        )
        .stdout.decode()
        .split()[-1]
    )
    assert details["caCertHash"] == f"sha256:{digest}"
    assert f"--discovery-token-ca-cert-hash sha256:{digest}" in details["joinCommand"]
    assert "<redacted>" in details["joinCommand"]


def test_output_carries_the_token_secret_only_as_show_join_command_details(
    initialized: tuple[Node, dict[str, Any], dict[str, Any]],
) -> None:
    node, doc, _ = initialized
    core = CoreV1Api(admin_client(node.rootfs))
    token = next(
        s
        for s in core.list_namespaced_secret("kube-system").items
        if s.type == "bootstrap.kubernetes.io/token"
    )
    token_id = base64.b64decode(token.data["token-id"]).decode()
    secret_part = base64.b64decode(token.data["token-secret"]).decode()
    show = next(p for p in doc["phases"] if p["path"] == "show-join-command")
    # A credential, in the one field a script asking for -o json looks for (see the README).
    assert show["details"]["token"] == f"{token_id}.{secret_part}"
    others = {**doc, "phases": [p for p in doc["phases"] if p is not show]}
    assert secret_part not in json.dumps(others)
    assert secret_part not in json.dumps({k: v for k, v in show.items() if k != "details"})
    assert show["details"]["certificateKey"] is None  # no --upload-certs


def test_second_init_converges_with_nothing_changed(
    initialized: tuple[Node, dict[str, Any], dict[str, Any]],
) -> None:
    node, _, _ = initialized
    before = {f: (node.rootfs / f).read_bytes() for f in files_under(node.rootfs) if not f.endswith(".sock")}
    code, doc, stderr = run_init(node)
    assert code == 0, stderr
    assert all(changed is False for _, changed in statuses(doc).values()), statuses(doc)
    after = {f: (node.rootfs / f).read_bytes() for f in files_under(node.rootfs) if not f.endswith(".sock")}
    assert after == before


@pytest.mark.parametrize(
    "kill_after",
    [
        "etc/kubernetes/pki/etcd/ca.crt",
        "etc/kubernetes/admin.conf",
        "etc/kubernetes/manifests/kube-apiserver.yaml",
    ],
)
def test_a_run_killed_between_phases_converges_on_rerun(tmp_path: Path, kill_after: str) -> None:
    node = make_node(tmp_path)
    with kubelet_once_configured(node.rootfs):
        proc = subprocess.Popen(node.init_args(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not (node.rootfs / kill_after).exists():
            assert proc.poll() is None, "init ended before the kill point"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        code, doc, stderr = run_init(node)
    assert code == 0, stderr
    assert doc["ok"] is True
    visible = [
        p.name for p in (node.rootfs / "etc/kubernetes/manifests").iterdir() if not p.name.startswith(".")
    ]
    assert sorted(visible) == [
        "etcd.yaml",
        "kube-apiserver.yaml",
        "kube-controller-manager.yaml",
        "kube-scheduler.yaml",
    ]


def test_reset_leaves_only_the_foreign_file_and_lists_it(tmp_path: Path) -> None:
    node = make_node(tmp_path, with_host_tools=False)
    foreign = node.rootfs / "etc/kubernetes/keep-me.txt"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("not ours\n")
    with kubelet_once_configured(node.rootfs):
        code, _, stderr = run_init(node, "--skip-phases", "preflight")
        assert code == 0, stderr
        etcd_member = node.rootfs / "var/lib/etcd/member/snap/db"  # what a running etcd would have written
        etcd_member.parent.mkdir(parents=True)
        etcd_member.write_bytes(b"data")
        proc = subprocess.run(
            [
                tool("bootstrap"),
                "reset",
                "--rootfs",
                str(node.rootfs),
                "--force",
                "-o",
                "json",
                "--timeout",
                "10s",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["kept"] == ["/etc/kubernetes/keep-me.txt"]
    assert "/var/lib/etcd" in result["removed"]
    remaining = sorted(str(p.relative_to(node.rootfs)) for p in node.rootfs.rglob("*"))
    assert remaining == ["etc", "etc/kubernetes", "etc/kubernetes/keep-me.txt"]
    assert "Kept /etc/kubernetes/keep-me.txt" in proc.stderr


def test_reset_asks_before_removing_anything(tmp_path: Path) -> None:
    node = make_node(tmp_path, with_host_tools=False)
    subprocess.run(
        [
            tool("bootstrap"),
            "phase",
            "certs",
            "ca",
            "--rootfs",
            str(node.rootfs),
            "--config",
            str(node.config),
        ],
        check=True,
        capture_output=True,
    )
    proc = subprocess.run(
        [tool("bootstrap"), "reset", "--rootfs", str(node.rootfs)],
        input="n\n",
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "Aborted" in proc.stderr
    assert (node.rootfs / "etc/kubernetes/pki/ca.key").exists()


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A directory the user nobody can reach (pytest's own tmp_path lives under a 0700 directory)."""
    base = Path(tempfile.mkdtemp(prefix="kube-bootstrap-nobody-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_dry_run_as_an_unprivileged_user_without_kubelet_writes_only_to_its_temp_dir(
    world_readable_dir: Path,
) -> None:
    node = make_node(world_readable_dir, with_host_tools=False)
    node.config.chmod(0o644)
    tmpdir = world_readable_dir / "tmp"
    tmpdir.mkdir()
    tmpdir.chmod(0o1777)
    nobody = pwd.getpwnam("nobody")

    def drop_privileges() -> None:
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)

    env = {**os.environ, "TMPDIR": str(tmpdir), "HOME": str(tmpdir)}
    env.pop("BOOTSTRAP_DRYRUN_DIR", None)
    command = unprivileged_runtime(world_readable_dir / "runtime") + node.init_args("--dry-run")[1:]
    proc = subprocess.run(
        command, capture_output=True, text=True, env=env, preexec_fn=drop_privileges, timeout=120, cwd=tmpdir
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["dryRunDir"].startswith(str(tmpdir))
    assert list(node.rootfs.iterdir()) == []
    assert any(
        a.startswith("Would create or update ConfigMap kube-system/kubeadm-config")
        for a in doc["dryRunPlan"]["apiActions"]
    )
    assert "IsPrivilegedUser" in proc.stderr  # preflight saw it, and a dry run only warns
    assert "PRIVATE KEY" not in proc.stdout


def test_a_second_concurrent_run_is_refused_naming_the_holder(tmp_path: Path) -> None:
    node = make_node(tmp_path, with_host_tools=False)
    with run_lock(Rootfs(node.rootfs)):
        proc = subprocess.run(node.init_args(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"pid {os.getpid()}" in proc.stderr and "another bootstrap run" in proc.stderr
    assert not (node.rootfs / "etc/kubernetes/pki").exists()


def test_dry_run_on_an_initialized_node_plans_no_change(
    initialized: tuple[Node, dict[str, Any], dict[str, Any]],
) -> None:
    node, _, _ = initialized
    code, doc, stderr = run_init(node, "--dry-run")
    assert code == 0, stderr
    assert doc["changed"] is False, [p["path"] for p in doc["phases"] if p["changed"]]
    assert doc["dryRunPlan"]["apiActions"] == []
    assert "[dryrun] ConfigMap kube-system/kubeadm-config is up to date" in stderr


def test_diff_shows_the_manifest_change_against_host_paths_and_writes_nothing(
    initialized: tuple[Node, dict[str, Any], dict[str, Any]], tmp_path: Path
) -> None:
    node, _, _ = initialized
    before = (node.rootfs / "etc/kubernetes/manifests/kube-scheduler.yaml").read_bytes()
    changed = tmp_path / "changed.yaml"
    changed.write_text(
        node.config.read_text().replace(
            "scheduler:\n  extraArgs:\n", 'scheduler:\n  extraArgs:\n  - name: v\n    value: "3"\n'
        )
    )
    proc = subprocess.run(
        [
            tool("bootstrap"),
            "init",
            "--config",
            str(changed),
            "--rootfs",
            str(node.rootfs),
            "--diff",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # stdout is the JSON document only, diffs included in it
    diff = next(p for p in doc["phases"] if p["path"] == "manifests/kube-scheduler")["details"]["diff"]
    assert "+++ /etc/kubernetes/manifests/kube-scheduler.yaml" in diff and "+    - --v=3" in diff
    assert (node.rootfs / "etc/kubernetes/manifests/kube-scheduler.yaml").read_bytes() == before
