"""`bootstrap upgrade plan|apply` without a running control plane: the skew rules, the plan, the
confirmation, dry runs. The node is made by `bootstrap init` (through the manifests, nothing
started); the stored configuration then comes from --config, as when the API cannot be reached."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bootstrap.components.pods import HostView
from bootstrap.components.render import render
from bootstrap.config import load_config
from bootstrap.upgrade.skew import (
    RULE_KUBELET_NOT_NEWER,
    RULE_KUBELET_TOO_OLD,
    RULE_NO_DOWNGRADE,
    RULE_NO_SKIP,
    RULE_SAME_MAJOR,
    SkewRefused,
    check_upgrade,
)
from bootstrap.wait.status import Freshness, Problem, judge
from tests.conftest import NO_WAIT, CliRunner, files_under
from tests.standin.apiserver import KNOWN_APISERVER_FLAGS, ApiServerStandin, manifest_flags
from tests.standin.harness import allocate_ports, init_config
from tests.tools import tool


@pytest.mark.parametrize(
    ("current", "target", "kubelets", "rule"),
    [
        ("v1.32.4", "v1.34.2", {}, RULE_NO_SKIP),
        ("v1.34.2", "v1.33.4", {}, RULE_NO_DOWNGRADE),
        ("v1.34.2", "v2.0.0", {}, RULE_SAME_MAJOR),
        ("v1.33.4", "v1.34.2", {"w1": "v1.35.0"}, RULE_KUBELET_NOT_NEWER),
        ("v1.34.2", "v1.35.0", {"w1": "v1.31.9"}, RULE_KUBELET_TOO_OLD),
    ],
)
def test_the_skew_policy_refuses_with_the_rule_named(
    current: str, target: str, kubelets: dict[str, str], rule: str
) -> None:
    with pytest.raises(SkewRefused) as refused:
        check_upgrade(current, target, kubelets)
    assert refused.value.rule == rule
    assert f"(rule: {rule})" in refused.value.format_message()
    assert refused.value.exit_code == 4


@pytest.mark.parametrize(
    ("current", "target", "kubelets", "warns"),
    [
        ("v1.33.4", "v1.34.2", {"cp1": "v1.33.4", "w1": "v1.31.0"}, False),
        ("v1.34.2", "v1.34.2", {"cp1": "v1.34.1"}, False),
        ("v1.34.2", "v1.34.1", {}, True),
    ],
)
def test_the_skew_policy_allows_one_minor_up_and_patch_changes(
    current: str, target: str, kubelets: dict[str, str], warns: bool
) -> None:
    assert bool(check_upgrade(current, target, kubelets)) is warns


def _node(cli: CliRunner, tmp_path: Path, version: str, extra: str = "") -> tuple[Path, Path, str]:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    text = init_config(allocate_ports()).replace(
        "kind: ClusterConfiguration\n", f"kind: ClusterConfiguration\nkubernetesVersion: {version}\n{extra}"
    )
    # The member list is the node's own (as init renders it, or as a join left it), not a fixed extraArg.
    text = re.sub(r"    - name: initial-cluster\n      value: .*\n", "", text)
    config = tmp_path / "kubeadm.yaml"
    config.write_text(text)
    result = cli("init", "--config", config, "--rootfs", rootfs, *NO_WAIT)
    assert result.code == 0, result.stderr
    return rootfs, config, text


@pytest.mark.parametrize(
    ("installed", "target", "rule"),
    [("v1.32.4", "v1.34.2", RULE_NO_SKIP), ("v1.34.2", "v1.33.4", RULE_NO_DOWNGRADE)],
)
def test_apply_refuses_a_version_change_the_skew_policy_forbids_and_writes_nothing(
    cli: CliRunner, tmp_path: Path, installed: str, target: str, rule: str
) -> None:
    rootfs, config, _ = _node(cli, tmp_path, installed)
    before = {f: (rootfs / f).read_bytes() for f in files_under(rootfs)}

    result = cli("upgrade", "apply", target, "--config", config, "--rootfs", rootfs, "--yes", "-o", "json")

    assert result.code == 4, result.stderr
    assert f"(rule: {rule})" in result.json()["error"]["message"]
    assert f"{installed} → {target}" in result.stderr
    assert {f: (rootfs / f).read_bytes() for f in files_under(rootfs)} == before
    planned = cli("upgrade", "plan", target, "--config", config, "--rootfs", rootfs)
    assert planned.code == 4 and rule in planned.stderr


def test_plan_shows_the_flag_volume_image_and_certificate_changes(cli: CliRunner, tmp_path: Path) -> None:
    rootfs, _, text = _node(cli, tmp_path, "v1.33.4")
    wanted = tmp_path / "wanted.yaml"
    wanted.write_text(
        text.replace(
            "scheduler:\n",
            "apiServer:\n  certSANs:\n  - api.example.test\n"
            "  extraVolumes:\n  - name: audit\n    hostPath: /var/log/audit\n    mountPath: /var/log/audit\n"
            "scheduler:\n",
        )
    )
    before = files_under(rootfs)

    result = cli("upgrade", "plan", "v1.34.2", "--config", wanted, "--rootfs", rootfs, "-o", "json")

    assert result.code == 0, result.stderr
    plan = result.json()["plan"]
    assert (plan["currentVersion"], plan["targetVersion"]) == ("v1.33.4", "v1.34.2")
    components = {c["component"]: c for c in plan["components"]}
    apiserver = components["kube-apiserver"]
    assert apiserver["to"]["image"] == "registry.k8s.io/kube-apiserver:v1.34.2"
    assert apiserver["volumes"] == ["+audit: /var/log/audit -> /var/log/audit"]
    assert apiserver["restartFor"] == ["apiserver"]
    assert "startupProbe" in components["kube-scheduler"]["probes"]
    assert any(
        f.startswith("~--feature-gates") or f.startswith("+--feature-gates")
        for f in components["etcd"]["flags"]
    )
    assert plan["certificates"] == [
        {
            "certificate": "apiserver",
            "component": "kube-apiserver",
            "sansAdded": ["DNS:api.example.test"],
            "sansRemoved": [],
        }
    ]
    assert files_under(rootfs) == before


def test_apply_without_a_terminal_and_without_yes_is_a_usage_error(cli: CliRunner, tmp_path: Path) -> None:
    rootfs, config, _ = _node(cli, tmp_path, "v1.33.4")
    before = {f: (rootfs / f).read_bytes() for f in files_under(rootfs)}

    proc = subprocess.run(
        [tool("bootstrap"), "upgrade", "apply", "v1.34.2", "--config", str(config), "--rootfs", str(rootfs)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert proc.returncode == 2, proc.stderr
    assert "--yes" in proc.stderr
    assert {f: (rootfs / f).read_bytes() for f in files_under(rootfs)} == before


def test_diff_prints_the_manifest_changes_and_writes_nothing(cli: CliRunner, tmp_path: Path) -> None:
    rootfs, config, _ = _node(cli, tmp_path, "v1.33.4")
    before = {f: (rootfs / f).read_bytes() for f in files_under(rootfs)}

    result = cli("upgrade", "apply", "v1.34.2", "--config", config, "--rootfs", rootfs, "--diff")

    assert result.code == 0, result.stderr
    assert "-    image: registry.k8s.io/kube-apiserver:v1.33.4" in result.stdout
    assert "+    image: registry.k8s.io/kube-apiserver:v1.34.2" in result.stdout
    assert {f: (rootfs / f).read_bytes() for f in files_under(rootfs)} == before


def _cluster_document(text: str) -> str:
    """Only the ClusterConfiguration document of ``text``."""
    return next(doc for doc in text.split("---\n") if "kind: ClusterConfiguration" in doc)


def test_a_config_without_init_configuration_takes_the_node_settings_from_the_running_node(
    cli: CliRunner, tmp_path: Path
) -> None:
    rootfs, _, text = _node(cli, tmp_path, "v1.33.4")
    cluster_only = tmp_path / "cluster.yaml"
    cluster_only.write_text(_cluster_document(text))

    result = cli("upgrade", "plan", "--config", cluster_only, "--rootfs", rootfs, "-o", "json")

    assert result.code == 0, result.stderr
    plan = result.json()["plan"]
    assert [c["component"] for c in plan["components"] if c["changed"]] == []
    assert plan["certificates"] == []


def test_a_joined_etcd_member_keeps_its_membership(cli: CliRunner, tmp_path: Path) -> None:
    rootfs, config, _ = _node(cli, tmp_path, "v1.34.2")
    etcd = rootfs / "etc/kubernetes/manifests/etcd.yaml"
    original = etcd.read_text()
    member = re.search(r"--initial-cluster=(\S+)", original)
    assert member is not None
    state = "\n    - --initial-cluster-state=existing"
    joined = original.replace(
        f"--initial-cluster={member.group(1)}",
        f"--initial-cluster=cp0=https://127.0.0.2:2380,{member.group(1)}{state}",
    )
    etcd.write_text(joined)

    result = cli("upgrade", "plan", "--config", config, "--rootfs", rootfs, "-o", "json")

    assert result.code == 0, result.stderr
    plan = {c["component"]: c for c in result.json()["plan"]["components"]}
    assert plan["etcd"]["changed"] is False, plan["etcd"]


def test_a_version_argument_that_is_no_version_is_a_usage_error(cli: CliRunner, tmp_path: Path) -> None:
    result = cli("upgrade", "apply", "banana", "--rootfs", tmp_path, "--yes", "-o", "json")

    assert result.code == 2
    assert "VERSION 'banana' is not a version" in result.json()["error"]["message"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "renewing"),
    [(("v1.34.2",), True), (("v1.34.2", "--certificate-renewal=false"), False), ((), False)],
)
def test_certificates_are_renewed_on_a_version_change_unless_turned_off(
    cli: CliRunner, tmp_path: Path, args: tuple[str, ...], renewing: bool
) -> None:
    rootfs, config, _ = _node(cli, tmp_path, "v1.33.4")

    result = cli("upgrade", "apply", *args, "--config", config, "--rootfs", rootfs, "--dry-run", "-o", "json")

    assert result.code == 0, result.stderr
    assert result.json()["certificateRenewal"] is renewing


def _mirror(config_hash: str, seen: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "kube-apiserver-cp1",
            "annotations": {
                "kubernetes.io/config.mirror": config_hash,
                "kubernetes.io/config.hash": config_hash,
                "kubernetes.io/config.seen": seen,
            },
            "ownerReferences": [{"kind": "Node", "name": "cp1"}],
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"ready": True, "restartCount": 0}],
        },
    }


def test_a_restored_manifest_counts_as_new_when_its_pod_has_the_hash_it_had_before() -> None:
    # A rolled-back API server: the API never saw the failed pod, so its mirror pod is the one from before
    # the failed write (old "seen" time, same hash): the pod the restored manifest runs as.
    written = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    mirror = _mirror("h0", "2026-01-01T11:00:00Z")

    assert judge(mirror, "cp1", Freshness(None, written)).problem_kind is Problem.STALE
    assert judge(mirror, "cp1", Freshness(None, written, expected_hash="h0")).problem_kind is None
    assert judge(mirror, "cp1", Freshness("h0", written, expected_hash="h0")).problem_kind is None
    other = judge(_mirror("h1", "2026-01-01T11:00:00Z"), "cp1", Freshness(None, written, expected_hash="h0"))
    assert other.problem_kind is Problem.STALE


@pytest.mark.parametrize("minor", [31, 32, 33, 34, 35])
def test_the_api_server_stand_in_knows_every_flag_we_render_and_refuses_an_unknown_one(
    minor: int, tmp_path: Path
) -> None:
    # The rollback test relies on this: a flag the real kube-apiserver does not know stops the stand-in.
    cfg = load_config(
        None,
        {
            "node-name": "cp1",
            "apiserver-advertise-address": "10.0.0.1",
            "kubernetes-version": f"v1.{minor}.0",
        },
    )
    pod = render("kube-apiserver", cfg, HostView(dir_exists=lambda _: False, proxy_env={})).pod
    assert set(manifest_flags(pod, "kube-apiserver")) <= KNOWN_APISERVER_FLAGS
    pod["spec"]["containers"][0]["command"].append("--no-such-flag=1")
    with pytest.raises(ValueError, match="unknown flag: --no-such-flag"):
        ApiServerStandin.from_manifest(pod, tmp_path)
