"""`bootstrap certs renew` restarting what uses the renewed files, against the kubelet stand-in.

The CLI runs as a subprocess; the kubelet and API server stand-ins run in this process, so every
restart is seen the way a real node shows it: a new mirror pod (new config.hash) that must become
healthy before the next component is touched.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.standin.harness import NODE, admin_client, prepare_rootfs, running_control_plane
from tests.standin.kubelet import KubeletStandin, Scenario
from tests.tools import tool

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
GENERATION = "kube-bootstrap.io/cert-generation"


@dataclass
class Run:
    code: int
    doc: dict[str, Any]
    stderr: str


@dataclass
class Node:
    rootfs: Path
    config: Path
    kubelet: KubeletStandin | None = None

    @property
    def manifests(self) -> Path:
        return self.rootfs / "etc/kubernetes/manifests"

    @property
    def pki(self) -> Path:
        return self.rootfs / "etc/kubernetes/pki"

    def renew(self, *args: str, timeout: str = "60s") -> Run:
        command = [tool("bootstrap"), "certs", "renew", *args, "--rootfs", str(self.rootfs)]
        command += ["--settle", "1s", "--timeout", timeout, "-o", "json"]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
        return Run(proc.returncode, json.loads(proc.stdout), proc.stderr)

    def hashes(self) -> dict[str, str]:
        from kubernetes.client import CoreV1Api

        api = CoreV1Api(admin_client(self.rootfs))
        found = {}
        for component in COMPONENTS:
            pod = api.read_namespaced_pod(f"{component}-{NODE}", "kube-system")
            found[component] = pod.metadata.annotations["kubernetes.io/config.hash"]
        return found

    def manifest_texts(self) -> dict[str, str]:
        return {c: (self.manifests / f"{c}.yaml").read_text() for c in COMPONENTS}

    def api_port(self) -> int:
        pod = yaml.safe_load((self.manifests / "kube-apiserver.yaml").read_text())
        flags = dict(a.lstrip("-").split("=", 1) for a in pod["spec"]["containers"][0]["command"][1:])
        return int(flags["secure-port"])


def enddate(path: Path) -> str:
    proc = subprocess.run(
        [tool("openssl"), "x509", "-noout", "-enddate", "-in", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return proc.stdout.strip().removeprefix("notAfter=")


def embedded_enddate(kubeconfig: Path, scratch: Path) -> str:
    import base64

    user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
    pem = scratch / f"{kubeconfig.name}.crt"
    pem.write_bytes(base64.b64decode(user["client-certificate-data"]))
    return enddate(pem)


def openssl_time(text: str) -> float:
    from datetime import datetime

    return datetime.strptime(text, "%b %d %H:%M:%S %Y %Z").timestamp()


def served_certificate(port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return ssl.DER_cert_to_PEM_cert(der).encode()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rootfs = tmp_path_factory.mktemp("renew") / "rootfs"
    prepare_rootfs(rootfs)
    return rootfs


@pytest.fixture
def stopped(prepared: Path, tmp_path: Path) -> Node:
    rootfs = tmp_path / "rootfs"
    shutil.copytree(prepared, rootfs, symlinks=True)
    return Node(rootfs, prepared.parent / f"{prepared.name}-kubeadm.yaml")


@pytest.fixture
def running(stopped: Node) -> Iterator[Node]:
    with running_control_plane(stopped.rootfs) as kubelet:
        stopped.kubelet = kubelet
        # Every mirror pod up before the test starts (the hashes are what the test compares).
        from tests.tools import wait_for

        wait_for(lambda: _all_mirrors(stopped), timeout=60, what="every mirror pod")
        yield stopped


def _all_mirrors(node: Node) -> bool:
    try:
        return len(node.hashes()) == len(COMPONENTS)
    except Exception:
        return False


def test_renew_all_restarts_every_user_in_turn_on_the_new_certificates(running: Node, tmp_path: Path) -> None:
    kubeconfigs = running.rootfs / "etc/kubernetes"
    before_dates = {
        "apiserver": enddate(running.pki / "apiserver.crt"),
        "etcd-server": enddate(running.pki / "etcd/server.crt"),
        "scheduler.conf": embedded_enddate(kubeconfigs / "scheduler.conf", tmp_path),
    }
    before = running.hashes()
    run = running.renew("all", "--restart")
    assert run.code == 0, run.stderr
    restart = run.doc["restart"]
    assert restart["requested"] == "restart"
    assert [r["component"] for r in restart["restarted"]] == list(COMPONENTS)
    assert restart["notRestarted"] == [] and "failed" not in restart
    after = running.hashes()
    for entry in restart["restarted"]:
        component = entry["component"]
        assert entry["healthy"] is True and entry["written"] is True
        assert entry["oldHash"] == before[component]
        assert entry["newHash"] == after[component] != before[component]
    # Uses, as read from the manifests: the API server's own certificate, the scheduler's kubeconfig.
    uses = {r["component"]: r["uses"] for r in restart["restarted"]}
    assert "/etc/kubernetes/pki/apiserver.crt" in uses["kube-apiserver"]
    assert "/etc/kubernetes/pki/apiserver-etcd-client.crt" in uses["kube-apiserver"]
    assert "/etc/kubernetes/pki/etcd/server.crt" in uses["etcd"]
    assert uses["kube-scheduler"] == ["/etc/kubernetes/scheduler.conf"]
    assert uses["kube-controller-manager"] == ["/etc/kubernetes/controller-manager.conf"]
    # One at a time: each component healthy again before the next one is restarted.
    lines = [line for line in run.stderr.splitlines() if line.startswith("[restart]")]
    expected = []
    for component in COMPONENTS:
        expected += [f"Restarting {component}", f"{component} restarted"]
    assert [next(e for e in expected if line.startswith(f"[restart] {e}")) for line in lines] == expected
    # Expiry dates moved (openssl's view), and the restarted API server serves the new certificate.
    assert openssl_time(enddate(running.pki / "apiserver.crt")) > openssl_time(before_dates["apiserver"])
    assert openssl_time(enddate(running.pki / "etcd/server.crt")) > openssl_time(before_dates["etcd-server"])
    scheduler_date = embedded_enddate(kubeconfigs / "scheduler.conf", tmp_path)
    assert openssl_time(scheduler_date) > openssl_time(before_dates["scheduler.conf"])
    assert served_certificate(running.api_port()) == (running.pki / "apiserver.crt").read_bytes()
    for text in running.manifest_texts().values():
        assert GENERATION in yaml.safe_load(text)["metadata"]["annotations"]
    assert "kubelet.conf is not renewed here" in run.doc["kubeletConf"]
    assert "PRIVATE KEY" not in json.dumps(run.doc) and "client-key-data" not in json.dumps(run.doc)


def test_renewing_one_certificate_restarts_only_its_user(running: Node) -> None:
    before, texts = running.hashes(), running.manifest_texts()
    run = running.renew("apiserver-etcd-client")  # default: restart, since the API server is up
    assert run.code == 0, run.stderr
    restart = run.doc["restart"]
    assert restart["requested"] == "auto" and restart["controlPlaneRunning"] is True
    assert [r["component"] for r in restart["restarted"]] == ["kube-apiserver"]
    after = running.hashes()
    assert after["kube-apiserver"] != before["kube-apiserver"]
    for component in ("etcd", "kube-controller-manager", "kube-scheduler"):
        assert after[component] == before[component]
        assert running.manifest_texts()[component] == texts[component]
    # A converging re-run of the manifests phase keeps the restart's annotation: nothing changes.
    texts = running.manifest_texts()
    command = [tool("bootstrap"), "phase", "manifests", "--config", str(running.config)]
    proc = subprocess.run(
        [*command, "--rootfs", str(running.rootfs), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert not any(p["changed"] for p in json.loads(proc.stdout)["phases"])
    assert running.manifest_texts() == texts and running.hashes() == after


def test_fresh_certificates_within_24h_renew_and_restart_nothing(running: Node) -> None:
    before, texts = running.hashes(), running.manifest_texts()
    certs = {p: p.read_bytes() for p in running.pki.rglob("*.crt")}
    run = running.renew("all", "--if-expiring-within", "24h", "--restart")
    assert run.code == 0, run.stderr
    assert run.doc["changed"] is False
    assert not any(c["changed"] for c in run.doc["certificates"])
    assert run.doc["restart"]["planned"] == [] and run.doc["restart"]["restarted"] == []
    assert running.hashes() == before and running.manifest_texts() == texts
    assert all(p.read_bytes() == data for p, data in certs.items())


def test_admin_conf_renewal_restarts_nothing(running: Node) -> None:
    before, texts = running.hashes(), running.manifest_texts()
    run = running.renew("admin.conf")
    assert run.code == 0, run.stderr
    assert run.doc["certificates"][0]["changed"] is True
    assert run.doc["restart"]["planned"] == [] and run.doc["restart"]["restarted"] == []
    assert running.hashes() == before and running.manifest_texts() == texts


def test_a_restart_that_fails_stops_with_exit_5_and_leaves_the_rest_alone(running: Node) -> None:
    assert running.kubelet is not None
    running.kubelet.scenarios["kube-controller-manager"] = Scenario(crash_loop_exit_code=3)
    before, texts = running.hashes(), running.manifest_texts()
    run = running.renew("all", timeout="6s")
    assert run.code == 5, run.stderr
    assert run.doc["ok"] is False and run.doc["error"]["exitCode"] == 5
    message = run.doc["error"]["message"]
    assert "kube-controller-manager did not come back healthy" in message
    assert "exit code 3" in message and "not restarted: kube-scheduler" in message
    restart = run.doc["restart"]
    assert [r["component"] for r in restart["restarted"]] == ["etcd", "kube-apiserver"]
    assert restart["failed"]["component"] == "kube-controller-manager"
    assert restart["failed"]["healthy"] is False and "exit code 3" in restart["failed"]["diagnosis"]
    assert restart["notRestarted"] == ["kube-scheduler"]
    assert any(c["changed"] for c in run.doc["certificates"])  # the renewal itself stands
    after = running.hashes()
    assert after["kube-scheduler"] == before["kube-scheduler"]
    assert running.manifest_texts()["kube-scheduler"] == texts["kube-scheduler"]
    assert "likely cause:" in run.stderr


def test_no_restart_keeps_the_old_behaviour(running: Node) -> None:
    before, texts = running.hashes(), running.manifest_texts()
    run = running.renew("all", "--no-restart")
    assert run.code == 0, run.stderr
    restart = run.doc["restart"]
    assert restart["requested"] == "no-restart" and restart["restarted"] == []
    assert restart["notRestarted"] == list(COMPONENTS)
    assert running.hashes() == before and running.manifest_texts() == texts


def test_without_a_running_control_plane_the_default_restarts_nothing(stopped: Node) -> None:
    texts = stopped.manifest_texts()
    run = stopped.renew("all")
    assert run.code == 0, run.stderr
    restart = run.doc["restart"]
    assert restart["requested"] == "auto" and restart["controlPlaneRunning"] is False
    assert restart["restarted"] == [] and restart["notRestarted"] == list(COMPONENTS)
    assert stopped.manifest_texts() == texts
    assert "this node's API server is not running" in run.stderr


def test_renewal_waits_for_no_one_while_another_run_holds_the_lock(stopped: Node) -> None:
    from bootstrap.host.fs import Rootfs
    from bootstrap.host.ledger import run_lock

    before = (stopped.pki / "apiserver.crt").read_bytes()
    with run_lock(Rootfs(stopped.rootfs)):
        run = stopped.renew("apiserver")
    assert run.code == 1 and "lock" in run.doc["error"]["message"]
    assert (stopped.pki / "apiserver.crt").read_bytes() == before
