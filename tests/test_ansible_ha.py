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
   nodes are fresh then, and a second set of nodes would cost a minute);
2. 3 control-plane hosts + 1 worker from scratch: success, 3 voting etcd members, every Node registered;
3. the same playbook again: changed=0 on every host;
4. a second worker added to the inventory: only it changes (and the anchor, which makes a token);
5. ``kube_bootstrap_state: absent`` on cp3: its etcd member removed (2 left), the others unchanged;
6. a bad variable on one host fails it, naming the variable, and stops every host before anything is
   written.

The wall times and the per-host ``changed`` counts are printed at the end of the module (``pytest -s``)
and appended to ``ansible-ha-report.txt`` in the run's base temporary directory (e.g.
/tmp/pytest-of-root/pytest-N/), which also works under pytest-xdist.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

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
        config = site.config_file(name)
        state[name]["<kept config>"] = (
            hashlib.sha256(config.read_bytes()).hexdigest() if config.exists() else ""
        )
    return state


def voting(site: Site, *names: str) -> list[tuple[str, bool]]:
    nodes = [site.ha.node(n) for n in names]
    return sorted((m.get("name", ""), bool(m.get("isLearner"))) for m in site.ha.members(nodes[0], nodes))


def bootstrap_token_secrets(site: Site) -> list[str]:
    """The secret half of every bootstrap token in the cluster (read with cp1's admin.conf)."""
    import base64

    from kubernetes.client import CoreV1Api

    with site.ha.api(site.ha.node("cp1")) as api:
        found = CoreV1Api(api).list_namespaced_secret(
            "kube-system", field_selector="type=bootstrap.kubernetes.io/token", _request_timeout=10
        )
    return [base64.b64decode(s.data["token-secret"]).decode() for s in found.items]


# ---- 1. check mode on fresh nodes --------


def test_check_mode_on_a_fresh_cluster_plans_every_host_and_writes_nothing(site: Site) -> None:
    before = everything(site)
    assert all(set(state) == {"<kept config>"} for state in before.values()), before

    run = site.play(["w1"], "--check", "--diff")

    counts = site.record("check mode, fresh 3+1", run)
    assert run.code == 0, run.output
    assert everything(site) == before, "check mode wrote on a node"
    assert set(counts) == {"cp1", "cp2", "cp3", "w1"}, run.output
    assert all(n > 0 for n in counts.values()), counts  # every host reports what a real run would change
    # The anchor's init is a real dry run, with the manifests it would write as diffs.
    assert "+++ /etc/kubernetes/manifests/kube-apiserver.yaml" in run.output, run.output
    for name in ("cp2", "cp3", "w1"):
        assert f"Check mode: {name} would join {site.ha.endpoint}" in run.output, run.output
    assert "the anchor cp1 is not initialized yet, so there is no API server to discover" in run.output
    assert "Its config was validated." in run.output
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


# ---- 4. a second worker --------


def test_adding_a_worker_changes_only_it_and_a_token_on_the_anchor(site: Site) -> None:
    ran_before(site, "rerun")
    before = everything(site, skip=LIVE)

    run = site.play(["w1", "w2"])

    counts = site.record("add worker w2", run)
    assert run.code == 0, run.output
    assert counts["w2"] > 0 and counts["cp2"] == counts["cp3"] == counts["w1"] == 0, counts
    assert run.changed_tasks("cp1") == ["kube_bootstrap : Create a bootstrap token for the joining hosts"]
    site.ha.wait_registered(site.ha.node("w2"), READY_WITHIN)
    after = everything(site, skip=LIVE)
    assert {n: after[n] for n in ("cp1", "cp2", "cp3", "w1")} == {
        n: before[n] for n in ("cp1", "cp2", "cp3", "w1")
    }
    site.ran.append("add worker")


# ---- 5. one control-plane host absent --------


def test_absent_on_cp3_removes_its_etcd_member_and_leaves_the_others_unchanged(site: Site) -> None:
    ran_before(site, "add worker")
    before = everything(site, skip=LIVE)

    run = site.play(
        ["w1", "w2"], extra={"cp3": {"kube_bootstrap_state": "absent", "kube_bootstrap_timeout": "5s"}}
    )

    counts = site.record("absent on cp3", run)
    assert run.code == 0, run.output + site.ha.etcd_logs()
    site.retired.add("cp3")
    site.ha.stop_kubelet(site.ha.node("cp3"))  # a reset does not stop the kubelet (as kubeadm)
    assert counts["cp3"] > 0 and all(counts[n] == 0 for n in ("cp1", "cp2", "w1", "w2")), counts
    assert voting(site, "cp1", "cp2") == [("cp1", False), ("cp2", False)]
    assert not site.ha.node("cp3").path("etc/kubernetes/manifests/etcd.yaml").exists()
    assert not site.config_file("cp3").exists()
    after = everything(site, skip=LIVE)
    assert {n: after[n] for n in ("cp1", "cp2", "w1", "w2")} == {
        n: before[n] for n in ("cp1", "cp2", "w1", "w2")
    }
    site.ran.append("absent")


# ---- 6. bad variables --------


def test_a_bad_variable_on_one_host_stops_every_host_before_anything_is_written(site: Site) -> None:
    ran_before(site, "absent")
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
