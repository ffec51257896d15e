"""The Ansible role builds, re-runs, grows and shrinks a whole HA cluster over real SSH.

Five nodes of tests/ha_cluster.py (cp1..cp3, w1, w2: network namespaces on the test's bridge, each with
its own rootfs, real etcd from its rendered manifest, API stand-ins keeping their objects in the etcd
cluster, haproxy in front as ``kube_bootstrap_control_plane_endpoint``), each running ``sshd`` on its
bridge address (tests/ssh_nodes.py). The real ``ansible-playbook`` runs ansible/playbooks/site.yml
from the switch namespace and reaches every node over SSH as root, with a key pair and host keys the
test made (host keys verified); each node's rootfs is its ``kube_bootstrap_rootfs``. A watcher starts a
node's kubelet stand-in once the role's init or join has written the kubelet's files, as systemd would.

The role's venv is the one tests/test_ansible_role.py has the role's install tasks build once per test
run: the nodes share this machine's filesystem outside their rootfs, so every node finds it at the
wanted version and the role's install step (run over SSH on every node, every run) skips the install.

The scenarios run in order on one cluster (``--dist loadfile`` keeps the module on one worker):

1. check mode on the fresh nodes plans every host and writes nothing on any node (done first: the
   nodes are fresh then, and a second set of nodes would cost a minute): init's dry run on the anchor,
   a join dry run on every other host, against a stand-in cluster (there is none yet);
2. 3 control-plane hosts + 1 worker from scratch: success, 3 voting etcd members, every Node registered;
3. the same playbook again: changed=0 on every host;
4. ``kube_bootstrap_state: absent`` on cp3: its etcd member removed (2 left), the others unchanged;
5. check mode with a new worker w2 and cp3 back (as a new node name): both joins are planned against the
   real cluster with the join data a real run would use (init's token, still valid; the certificates
   init uploaded, opened with the key the anchor kept), so the anchor plans no change; nothing written;
6. w2 added for real, asking for a token valid longer than init's: only w2 and a new token on the anchor
   change;
7. a bad variable on one host fails it, naming the variable, and stops every host before anything is
   written.

The wall times and the per-host ``changed`` counts are printed at the end of the module (``pytest -s``)
and appended to ``ansible-ha-report.txt`` in the run's base temporary directory (e.g.
/tmp/pytest-of-root/pytest-N/), which also works under pytest-xdist.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bootstrap import __version__
from tests.ha_cluster import HOST_CHECKS, HaCluster
from tests.netns import Topology
from tests.ssh_nodes import PlayRun, SshSite
from tests.test_ansible_role import built_wheelhouse, install_vars, role_venv

REPO = Path(__file__).resolve().parent.parent
ROLES = REPO / "ansible" / "roles"
SITE = REPO / "ansible" / "playbooks" / "site.yml"
NAMES = ["cp1", "cp2", "cp3", "w1", "w2"]
CONTROL_PLANE = ["cp1", "cp2", "cp3"]
READY_WITHIN = 60.0
# Files that change by themselves on a running node (etcd's data and logs, our run lock and ledger).
LIVE = ("var/lib/etcd", "var/log", "var/lib/kube-bootstrap")


@dataclass
class Site:
    """The cluster, its SSH side, and what the scenarios recorded."""

    ha: HaCluster
    ssh: SshSite
    base: Path
    venv: Path
    wheelhouse: Path
    retired: set[str] = field(default_factory=set)
    timings: dict[str, float] = field(default_factory=dict)
    changed: dict[str, dict[str, int]] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)

    def config_file(self, name: str) -> Path:
        return self.base / name / "etc" / "kubeadm.yaml"

    def key_file(self, name: str) -> Path:
        """Where the role keeps the certificate key on the anchor: next to the config."""
        return self.config_file(name).with_name("certificate-key")

    def host_vars(self, name: str) -> dict[str, Any]:
        node = self.ha.node(name)
        return {
            "kube_bootstrap_rootfs": str(node.rootfs),
            "kube_bootstrap_config_file": str(self.config_file(name)),
            "kube_bootstrap_node_name": name,
            "kube_bootstrap_advertise_address": node.address,
        }

    def common_vars(self) -> dict[str, Any]:
        return {
            **install_vars(self.wheelhouse),
            "kube_bootstrap_venv": str(self.venv),
            "kube_bootstrap_version": __version__,
            "kube_bootstrap_kubernetes_version": self.ha.kubernetes_version,
            "kube_bootstrap_control_plane_endpoint": self.ha.endpoint,
            "kube_bootstrap_encryption_algorithm": "ECDSA-P256",  # fast keys
            # The node is a directory, not a machine: no kubelet binary, no container runtime, swap on.
            "kube_bootstrap_ignore_preflight_errors": HOST_CHECKS.split(","),
            "kube_bootstrap_settle": "1s",
            "kube_bootstrap_timeout": "60s",
        }

    def play(
        self,
        workers: list[str],
        *options: str,
        control_plane: list[str] = CONTROL_PLANE,
        playbook: Path = SITE,
        extra: dict[str, dict[str, Any]] | None = None,
    ) -> PlayRun:
        host_vars = {name: {**self.host_vars(name), **(extra or {}).get(name, {})} for name in NAMES}
        inventory = self.ssh.inventory(
            {"control_plane": control_plane, "workers": workers}, host_vars, self.common_vars()
        )
        return self.ssh.play(playbook, inventory, *options, roles=ROLES)

    def record(self, scenario: str, run: PlayRun) -> dict[str, int]:
        self.timings[scenario] = run.seconds
        self.changed[scenario] = run.changed()
        return self.changed[scenario]


def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ansible-ha-report.txt`` in this run's base temporary directory (the one xdist workers share)."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if "PYTEST_XDIST_WORKER" in os.environ else base) / "ansible-ha-report.txt"


def start_kubelets(site: Site, stop: threading.Event) -> threading.Thread:
    """Start each node's kubelet stand-in once the role has written the kubelet's files there."""

    def watch() -> None:
        while not stop.wait(0.1):
            for node in site.ha.nodes.values():
                if (
                    node.kubelet is None
                    and node.name not in site.retired
                    and site.ha.kubelet_files_written(node)
                ):
                    site.ha.start_kubelet(node)

    watcher = threading.Thread(target=watch, daemon=True, name="kubelets")
    watcher.start()
    return watcher


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    wheelhouse = built_wheelhouse(tmp_path_factory)
    venv = role_venv(tmp_path_factory, wheelhouse)
    # Short: Unix socket paths (ssh control sockets, the kubelet stand-ins') must fit in 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="kb-ha-"))
    stop = threading.Event()
    t = time.monotonic()
    built: Site | None = None
    try:
        with Topology(len(NAMES)) as topo:
            ha = HaCluster(topo, base, NAMES)
            ssh = SshSite(topo, base, {name: ha.node(name).host for name in NAMES})
            built = Site(ha, ssh, base, venv, wheelhouse)
            watcher = None
            try:
                ha.start_load_balancer(CONTROL_PLANE)
                ssh.start()
                built.timings["nodes, haproxy and sshd up"] = time.monotonic() - t
                watcher = start_kubelets(built, stop)
                yield built
            finally:
                stop.set()
                if watcher is not None:
                    watcher.join(timeout=10)
                ha.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
        report(built, time.monotonic() - t, report_file(tmp_path_factory))


def report(site: Site | None, seconds: float, log: Path) -> None:
    """Print the wall times and changed counts (``pytest -s``), and append them to ``log`` (under
    pytest-xdist a worker's output is not shown)."""
    if site is None:
        return
    lines = [f"Ansible HA module: {seconds:.1f}s in all"]
    lines += [f"  {what}: {value:.1f}s" for what, value in site.timings.items()]
    lines += [f"  changed per host, {scenario}: {counts}" for scenario, counts in site.changed.items()]
    print("\n" + "\n".join(lines))
    with log.open("a") as out:
        out.write("\n".join(lines) + "\n")


def ran_before(site: Site, *scenarios: str) -> None:
    missing = [s for s in scenarios if s not in site.ran]
    assert not missing, (
        f"{missing} did not run before this test on this cluster: the module's tests share one cluster "
        "and run in order on one worker (pytest-xdist: --dist loadfile, as .ci/test)"
    )


def fingerprint(root: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Every path below ``root``: a file's sha256, a link's target, or 'dir'."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = str(path.relative_to(root))
        if relative.startswith(skip):
            continue
        if path.is_symlink():
            found[relative] = "-> " + str(path.readlink())
        elif path.is_file():
            found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[relative] = "dir"
    return found


def everything(site: Site, skip: tuple[str, ...] = ()) -> dict[str, dict[str, str]]:
    """The fingerprint of every node's rootfs and of the config the role keeps for it."""
    state = {name: fingerprint(site.ha.node(name).rootfs, skip) for name in NAMES}
    for name in NAMES:
        for what, kept in (("config", site.config_file(name)), ("key", site.key_file(name))):
            state[name][f"<kept {what}>"] = (
                hashlib.sha256(kept.read_bytes()).hexdigest() if kept.exists() else ""
            )
    return state


def voting(site: Site, *names: str) -> list[tuple[str, bool]]:
    nodes = [site.ha.node(n) for n in names]
    return sorted((m.get("name", ""), bool(m.get("isLearner"))) for m in site.ha.members(nodes[0], nodes))


def kubeadm_certs(site: Site) -> tuple[dict[str, bytes], datetime]:
    """kube-system/kubeadm-certs (data key -> sealed value) and its owner token's expiry."""
    import base64

    from kubernetes.client import CoreV1Api

    with site.ha.api(site.ha.node("cp1")) as api:
        core = CoreV1Api(api)
        stored = core.read_namespaced_secret("kubeadm-certs", "kube-system", _request_timeout=10)
        (ref,) = stored.metadata.owner_references
        owner = core.read_namespaced_secret(ref.name, "kube-system", _request_timeout=10)
    assert owner.metadata.uid == ref.uid
    expires = base64.b64decode(owner.data["expiration"]).decode().replace("Z", "+00:00")
    return {k: base64.b64decode(v) for k, v in stored.data.items()}, datetime.fromisoformat(expires)


def bootstrap_token_secrets(site: Site) -> list[str]:
    """The secret half of every bootstrap token in the cluster (read with cp1's admin.conf)."""
    import base64

    from kubernetes.client import CoreV1Api

    with site.ha.api(site.ha.node("cp1")) as api:
        found = CoreV1Api(api).list_namespaced_secret(
            "kube-system", field_selector="type=bootstrap.kubernetes.io/token", _request_timeout=10
        )
    return [base64.b64decode(s.data["token-secret"]).decode() for s in found.items]


JOIN_CONTROL_PLANE = "kube_bootstrap : Join the control plane"
JOIN_WORKER = "kube_bootstrap : Join as a worker"
UPLOAD_CERTS = (
    "kube_bootstrap : Upload the certificates (the kubeadm-certs Secret) unless they are there under this key"
)


def join_plan(run: PlayRun, host: str, task: str) -> dict[str, Any]:
    """The check-mode result of ``host``'s join task: a ``bootstrap join --dry-run`` that ran there."""
    result = run.task_result(host, task)
    assert result.get("changed") is True, result  # planned: it would write the node's files
    doc = result["result"]
    assert (doc["kind"], doc["command"], doc["dryRun"]) == ("RunResult", "join", True), doc
    return result


def phase_messages(result: dict[str, Any], path: str) -> list[str]:
    return next(p["messages"] for p in result["result"]["phases"] if p["path"] == path)


# ---- 1. check mode on fresh nodes --------


def test_check_mode_on_a_fresh_cluster_plans_every_host_and_writes_nothing(site: Site) -> None:
    before = everything(site)
    assert all(set(state) == {"<kept config>", "<kept key>"} for state in before.values()), before

    run = site.play(["w1"], "--check", "--diff", "-v")

    counts = site.record("check mode, fresh 3+1", run)
    assert run.code == 0, run.output
    assert everything(site) == before, "check mode wrote on a node"
    assert set(counts) == {"cp1", "cp2", "cp3", "w1"}, run.output
    assert all(n > 0 for n in counts.values()), counts  # every host reports what a real run would change
    # The anchor's init is a real dry run, with the manifests it would write as diffs.
    assert "+++ /etc/kubernetes/manifests/kube-apiserver.yaml" in run.output, run.output
    assert "Check mode: cp2, cp3, w1 plan their joins with bootstrap join --dry-run." in run.output
    assert "The anchor cp1 is not initialized yet" in run.output
    # Every other host ran a real join dry run: nothing answers at the endpoint yet, so it plans
    # against a stand-in cluster, and says a real run would stop at discovery if it were run now.
    for name, task in (("cp2", JOIN_CONTROL_PLANE), ("cp3", JOIN_CONTROL_PLANE), ("w1", JOIN_WORKER)):
        planned = join_plan(run, name, task)
        assert "--dry-run" in planned["cmd"], planned["cmd"]
        assert set(planned["would_fail"]) == {"preflight"}, planned["would_fail"]
        assert "out of reach" in planned["would_fail"]["preflight"]
        assert f"cannot reach the API server at https://{site.ha.endpoint}" in planned["stand_in"]["reason"]
        assert "kubelet-start" in planned["would_change"], planned["would_change"]
        if task == JOIN_CONTROL_PLANE:
            # Every phase after preflight is planned: none skipped for want of a cluster.
            after = [p for p in planned["result"]["dryRunPlan"]["plan"] if p["phase"] != "preflight"]
            assert [p["phase"] for p in after if p["status"] in ("skipped", "would-fail")] == [], after
            assert "control-plane-prepare/control-plane/kube-apiserver" in planned["would_change"]
    # --diff shows the manifests the control-plane joins would write.
    assert "+++ /etc/kubernetes/manifests/kube-apiserver.yaml" in run.task_output(JOIN_CONTROL_PLANE)
    site.ran.append("check")


# ---- 2. from scratch --------


def test_three_control_plane_hosts_and_a_worker_from_scratch(site: Site) -> None:
    run = site.play(["w1"], "-v")

    counts = site.record("converge 3+1 from scratch", run)
    assert run.code == 0, run.output + site.ha.etcd_logs()
    assert set(counts) == {"cp1", "cp2", "cp3", "w1"} and all(n > 0 for n in counts.values()), counts
    assert voting(site, "cp1", "cp2", "cp3") == [("cp1", False), ("cp2", False), ("cp3", False)]
    for name in ("cp1", "cp2", "cp3", "w1"):
        site.ha.wait_registered(site.ha.node(name), READY_WITHIN)
    # The join data went through host variables only: no token secret in the (verbose) output.
    secrets = bootstrap_token_secrets(site)
    assert secrets, "init made a bootstrap token"
    leaked = [s for s in secrets if s in run.output]
    assert not leaked, "a bootstrap token secret is in the play's output"
    # The anchor keeps the key of the certificates init uploaded, for a later control-plane join: it
    # opens them to the anchor's own files.
    key = site.key_file("cp1").read_text().strip()
    assert site.key_file("cp1").stat().st_mode & 0o777 == 0o600 and re.fullmatch(r"[0-9a-f]{64}", key)
    assert key not in run.output
    sealed, expires = kubeadm_certs(site)
    pki = site.ha.node("cp1").path("etc/kubernetes/pki")
    for name, blob in sealed.items():
        opened = AESGCM(bytes.fromhex(key)).decrypt(blob[:12], blob[12:], None)
        assert opened == (pki / name.replace("etcd-ca.", "etcd/ca.")).read_bytes(), name
    assert expires - datetime.now(UTC) > timedelta(hours=1, minutes=50), expires
    site.ran.append("converge")


# ---- 3. the same playbook again --------


def test_a_second_run_on_the_complete_cluster_changes_nothing(site: Site) -> None:
    ran_before(site, "converge")
    before = everything(site, skip=LIVE)

    run = site.play(["w1"])

    counts = site.record("re-run, no change", run)
    assert run.code == 0, run.output
    assert counts == {"cp1": 0, "cp2": 0, "cp3": 0, "w1": 0}, {
        h: run.changed_tasks(h) for h in counts if counts[h]
    }
    assert everything(site, skip=LIVE) == before
    site.ran.append("rerun")


# ---- 4. one control-plane host absent --------


def test_absent_on_cp3_removes_its_etcd_member_and_leaves_the_others_unchanged(site: Site) -> None:
    ran_before(site, "rerun")
    before = everything(site, skip=LIVE)

    run = site.play(["w1"], extra={"cp3": {"kube_bootstrap_state": "absent", "kube_bootstrap_timeout": "5s"}})

    counts = site.record("absent on cp3", run)
    assert run.code == 0, run.output + site.ha.etcd_logs()
    site.retired.add("cp3")
    site.ha.stop_kubelet(site.ha.node("cp3"))  # a reset does not stop the kubelet (as kubeadm)
    assert counts["cp3"] > 0 and all(counts[n] == 0 for n in ("cp1", "cp2", "w1")), counts
    assert voting(site, "cp1", "cp2") == [("cp1", False), ("cp2", False)]
    assert not site.ha.node("cp3").path("etc/kubernetes/manifests/etcd.yaml").exists()
    assert not site.config_file("cp3").exists()
    after = everything(site, skip=LIVE)
    assert {n: after[n] for n in ("cp1", "cp2", "w1")} == {n: before[n] for n in ("cp1", "cp2", "w1")}
    site.ran.append("absent")


# ---- 5. check mode: a worker and a control-plane host join a cluster that exists --------


def test_check_mode_plans_joins_against_the_cluster_with_the_join_data_a_real_run_would_use(
    site: Site,
) -> None:
    ran_before(site, "absent")
    before = everything(site, skip=LIVE)
    tokens = bootstrap_token_secrets(site)
    kept_key = site.key_file("cp1")

    # A new worker w2, and cp3 back as a new machine would come: under another node name (the old Node
    # object stays, and a Ready node of the same name would be refused).
    run = site.play(["w1", "w2"], "--check", "-v", extra={"cp3": {"kube_bootstrap_node_name": "cp3b"}})

    counts = site.record("check mode, w2 and cp3 join", run)
    assert run.code == 0, run.output
    assert everything(site, skip=LIVE) == before, "check mode wrote on a node"
    assert bootstrap_token_secrets(site) == tokens, "check mode made a token"
    # init's token (the role's, 1h) is still valid for 30 minutes and the certificates init uploaded
    # still open with the kept key: a real run would use both, so the anchor plans no change.
    assert counts == {"cp1": 0, "cp2": 0, "cp3": counts["cp3"], "w1": 0, "w2": counts["w2"]}, (
        counts,
        "\n".join(run.task_result("cp1", UPLOAD_CERTS)["result"]["phases"][0]["messages"]),
    )
    assert counts["cp3"] > 0 and counts["w2"] > 0, counts
    assert "They discover the cluster with the join token a real run would use." in run.output
    assert "The certificates are in the cluster under the kept key." in run.output
    for name, task in (("w2", JOIN_WORKER), ("cp3", JOIN_CONTROL_PLANE)):
        planned = join_plan(run, name, task)
        assert planned["would_fail"] == {} and planned["stand_in"] is None, planned
        assert f"Discovered the cluster at https://{site.ha.endpoint}" in phase_messages(planned, "preflight")
    downloaded = phase_messages(
        join_plan(run, "cp3", JOIN_CONTROL_PLANE), "control-plane-prepare/download-certs"
    )
    assert not [m for m in downloaded if "stand-in" in m], downloaded
    assert kept_key.read_text().strip() not in run.output
    assert not [s for s in tokens if s in run.output], "a token secret is in the play's output"
    site.ran.append("check joins")


# ---- 6. a second worker --------


def test_adding_a_worker_changes_only_it_and_renews_a_token_too_short_lived(site: Site) -> None:
    ran_before(site, "check joins")
    before = everything(site, skip=LIVE)
    tokens = bootstrap_token_secrets(site)

    # init's token (1h) is not valid for the 2 hours asked here: the anchor makes a new one first. (The
    # check-mode run before showed the other case: a token valid long enough is used again.)
    run = site.play(
        ["w1", "w2"], control_plane=["cp1", "cp2"], extra={"cp1": {"kube_bootstrap_join_token_min_ttl": "2h"}}
    )

    counts = site.record("add worker w2 (token renewed)", run)
    assert run.code == 0, run.output
    assert counts["w2"] > 0 and counts["cp2"] == counts["w1"] == 0, counts
    assert run.changed_tasks("cp1") == ["kube_bootstrap : Use a join token that is still valid, or make one"]
    assert len(bootstrap_token_secrets(site)) == len(tokens) + 1
    site.ha.wait_registered(site.ha.node("w2"), READY_WITHIN)
    after = everything(site, skip=LIVE)
    assert {n: after[n] for n in ("cp1", "cp2", "cp3", "w1")} == {
        n: before[n] for n in ("cp1", "cp2", "cp3", "w1")
    }
    site.ran.append("add worker")


# ---- 7. bad variables --------


def test_a_bad_variable_on_one_host_stops_every_host_before_anything_is_written(site: Site) -> None:
    ran_before(site, "add worker")
    before = everything(site, skip=LIVE)

    # One host with a value its argument spec refuses: every host stops before the install step. (A
    # missing kube_bootstrap_control_plane_endpoint is refused the same way: tests/test_ansible_role.py.)
    run = site.play(["w1", "w2"], extra={"w2": {"kube_bootstrap_encryption_algorithm": "RSA-1024"}})

    counts = site.record("bad variable on w2", run)
    assert run.code != 0
    assert "kube_bootstrap_encryption_algorithm" in run.output and "RSA-1024" in run.output
    assert "Stopping before anything is written: w2 failed its checks" in run.output, run.output
    recap = run.recap()
    assert all(recap[n]["failed"] == 1 for n in recap), recap  # every host stopped
    assert all(n == 0 for n in counts.values()), counts
    assert "Read the installed kube-bootstrap version" not in run.output, "stopped before the install step"
    assert everything(site, skip=LIVE) == before
