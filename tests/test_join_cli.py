"""The surface of ``bootstrap join``: kubeadm join's flags and where each lands, the phase commands in
kubeadm's order, bad input refused before anything is written, and a dry run without a cluster."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bootstrap.cli.join_commands import join, options_from
from bootstrap.config import JoinConfiguration, load_join_config
from bootstrap.phases import JOIN_PHASES
from bootstrap.workflow.tree import all_paths
from tests.conftest import CliRunner, files_under

TOKEN = "abcdef.0123456789abcdef"
OTHER_TOKEN = "ghijkl.0123456789abcdef"
PIN = "sha256:" + "ab" * 32
KEY = "0f" * 32
ENDPOINT = "10.0.0.1:6443"

Getter = Callable[[JoinConfiguration], Any]

# kubeadm join's flags (kubeadm v1.34 `kubeadm join --help`, the v1beta4 field each sets), the value
# given, where it must land, and what must be there. Control-plane flags are given with --control-plane.
KUBEADM_JOIN_FLAGS: list[tuple[str, str | None, Getter, Any]] = [
    (
        "--token",
        OTHER_TOKEN,
        lambda j: (j.discovery.bootstrap_token.token, j.discovery.tls_bootstrap_token),  # type: ignore[union-attr]
        (OTHER_TOKEN, OTHER_TOKEN),
    ),
    ("--discovery-token", OTHER_TOKEN, lambda j: j.discovery.bootstrap_token.token, OTHER_TOKEN),  # type: ignore[union-attr]
    ("--tls-bootstrap-token", OTHER_TOKEN, lambda j: j.discovery.tls_bootstrap_token, OTHER_TOKEN),
    (
        "--discovery-token-ca-cert-hash",
        "sha256:" + "cd" * 32,
        lambda j: j.discovery.bootstrap_token.ca_cert_hashes,  # type: ignore[union-attr]
        ["sha256:" + "cd" * 32],
    ),
    (
        "--discovery-token-unsafe-skip-ca-verification",
        None,
        lambda j: j.discovery.bootstrap_token.unsafe_skip_ca_verification,  # type: ignore[union-attr]
        True,
    ),
    (
        "--discovery-file",
        "/etc/kubernetes/discovery.conf",
        lambda j: j.discovery.file.kube_config_path,
        "/etc/kubernetes/discovery.conf",
    ),  # type: ignore[union-attr]
    ("--control-plane", None, lambda j: j.control_plane is not None, True),
    ("--certificate-key", KEY, lambda j: j.control_plane.certificate_key, KEY),  # type: ignore[union-attr]
    (
        "--apiserver-advertise-address",
        "10.1.2.3",
        lambda j: j.control_plane.local_api_endpoint.advertise_address,  # type: ignore[union-attr]
        "10.1.2.3",
    ),
    (
        "--apiserver-bind-port",
        "7443",
        lambda j: j.control_plane.local_api_endpoint.bind_port,  # type: ignore[union-attr]
        7443,
    ),
    ("--node-name", "worker-7", lambda j: j.node_registration.name, "worker-7"),
]
CONTROL_PLANE_ONLY = {"--certificate-key", "--apiserver-advertise-address", "--apiserver-bind-port"}
# kubeadm join's other flags, which every join command takes too.
COMMON_FLAGS = {"--config", "--dry-run", "--ignore-preflight-errors", "--skip-phases", "--rootfs", "--output"}
# kubeadm v1.34 join's phases with ControlPlaneKubeletLocalMode (on by default), in order.
KUBEADM_JOIN_PHASES = [
    "preflight",
    "control-plane-prepare",
    "control-plane-prepare/download-certs",
    "control-plane-prepare/certs",
    "control-plane-prepare/kubeconfig",
    "control-plane-prepare/control-plane",
    "kubelet-start",
    "etcd-join",
    "kubelet-wait-bootstrap",
    "control-plane-join",
    "control-plane-join/mark-control-plane",
    "wait-control-plane",
]


def parsed(*args: str) -> JoinConfiguration:
    """What ``bootstrap join <args>`` would run with: the command line parsed by the real command, its
    options mapped by the real code, the JoinConfiguration loaded by the real loader (nothing runs)."""
    ctx = join.make_context("join", list(args))
    options = options_from(ctx.params)
    cfg = load_join_config(options.config_file, options.join_overrides, api_server_endpoint=options.endpoint)
    return cfg.join


@pytest.mark.parametrize(
    ("flag", "value", "field", "expected"), KUBEADM_JOIN_FLAGS, ids=[f[0] for f in KUBEADM_JOIN_FLAGS]
)
def test_each_kubeadm_join_flag_lands_in_its_join_configuration_field(
    flag: str, value: str | None, field: Getter, expected: Any
) -> None:
    if flag == "--discovery-file":
        base = ["--tls-bootstrap-token", TOKEN]
    else:
        base = [ENDPOINT, "--token", TOKEN, "--discovery-token-ca-cert-hash", PIN]
    if flag in CONTROL_PLANE_ONLY:
        base.append("--control-plane")
    if flag == "--discovery-token-ca-cert-hash":
        base = base[:-2]
    given = [flag] if value is None else [flag, value]
    assert field(parsed(*base, "--node-name", "n1", *given)) == expected


def test_join_takes_every_kubeadm_join_flag() -> None:
    names = {opt for param in join.params for opt in getattr(param, "opts", [])}
    assert {f[0] for f in KUBEADM_JOIN_FLAGS} | COMMON_FLAGS <= names


def test_the_ca_hash_flag_repeats_and_flags_win_over_the_config(tmp_path: Path) -> None:
    config = tmp_path / "join.yaml"
    config.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n"
        "nodeRegistration: {name: from-file}\n"
        f"discovery:\n  bootstrapToken: {{token: {TOKEN}, apiServerEndpoint: '10.9.9.9:6443', "
        f"caCertHashes: ['{PIN}']}}\n"
    )
    other = "sha256:" + "cd" * 32
    join_cfg = parsed(
        ENDPOINT,
        "--config",
        str(config),
        "--node-name",
        "from-flag",
        "--discovery-token-ca-cert-hash",
        PIN,
        "--discovery-token-ca-cert-hash",
        other,
    )
    assert join_cfg.node_registration.name == "from-flag"
    token = join_cfg.discovery.bootstrap_token
    assert token is not None
    assert token.api_server_endpoint == ENDPOINT
    assert token.ca_cert_hashes == [PIN, other]


def test_the_phase_tree_follows_kubeadm_134() -> None:
    assert [p for p in all_paths(JOIN_PHASES) if p.count("/") <= 1] == KUBEADM_JOIN_PHASES


@pytest.mark.parametrize("path", all_paths(JOIN_PHASES))
def test_every_phase_path_is_a_command(cli: CliRunner, path: str) -> None:
    result = cli("join", "phase", path, "--help")
    assert result.code == 0, result.stderr
    assert "--token" in result.stdout and "--discovery-token-ca-cert-hash" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("join", "phase", "nosuch"),
        ("join", "phase", "control-plane-prepare", "nosuch"),
        ("join", "phase", "control-plane-prepare/nosuch"),
        (
            "join",
            ENDPOINT,
            "--token",
            TOKEN,
            "--discovery-token-ca-cert-hash",
            PIN,
            "--skip-phases",
            "nosuch",
        ),
    ],
)
def test_an_unknown_phase_name_is_a_usage_error(cli: CliRunner, rootfs: Path, args: tuple[str, ...]) -> None:
    result = cli(*args, "--rootfs", str(rootfs))
    assert result.code == 2, result.stderr
    assert "nosuch" in result.stderr
    assert files_under(rootfs) == []


def test_bad_fields_are_all_named_exit_3_and_nothing_is_written(
    cli: CliRunner, rootfs: Path, tmp_path: Path
) -> None:
    config = tmp_path / "join.yaml"
    config.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n"
        "nodeRegistration: {name: n1, criSocket: 'ftp://x'}\n"
        "controlPlane:\n  localAPIEndpoint: {advertiseAddress: not-an-ip, bindPort: 99999}\n"
        "  certificateKey: abc\n"
        "timeouts: {discovery: soon}\n"
        "---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nhealthzPort: x\n"
    )
    result = cli(
        "join",
        ENDPOINT,
        "--config",
        str(config),
        "--token",
        "abcdef.SECRET-VALUE-1234",
        "--discovery-token-ca-cert-hash",
        "sha256:nothex",
        "--rootfs",
        str(rootfs),
        "-o",
        "json",
    )
    assert result.code == 3, result.stderr
    message = result.json()["error"]["message"]
    for field in (
        "nodeRegistration.criSocket",
        "controlPlane.localAPIEndpoint.advertiseAddress",
        "controlPlane.localAPIEndpoint.bindPort",
        "controlPlane.certificateKey",
        "timeouts.discovery",
        "--token (discovery.bootstrapToken.token)",
        "--discovery-token-ca-cert-hash (discovery.bootstrapToken.caCertHashes[0])",
    ):
        assert field in message, field
    assert "SECRET-VALUE" not in result.stdout + result.stderr
    assert files_under(rootfs) == [] and not any(rootfs.iterdir())


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound here but not listening: a connect to it is refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def test_a_dry_run_without_a_cluster_shows_its_plan_and_writes_nothing(
    cli: CliRunner, rootfs: Path, closed_port: int
) -> None:
    result = cli(
        "join",
        f"127.0.0.1:{closed_port}",
        "--token",
        TOKEN,
        "--discovery-token-ca-cert-hash",
        PIN,
        "--node-name",
        "n1",
        "--dry-run",
        "--rootfs",
        str(rootfs),
        "-o",
        "json",
    )
    assert result.code == 0, result.stderr
    doc = result.json()
    assert doc["ok"] and doc["dryRun"] and doc["command"] == "join"
    steps = {s["phase"]: s for s in doc["dryRunPlan"]["plan"]}
    assert next(iter(steps)) == "preflight" and steps["preflight"]["status"] == "would-fail"
    assert "connection refused" in steps["preflight"]["wouldFail"]
    # A worker skips the control-plane phases for being a worker; the rest plan against a stand-in.
    phases = {p["path"]: p for p in doc["phases"]}
    assert phases["control-plane-prepare/download-certs"]["skipReason"].startswith("worker node")
    assert (
        steps["kubelet-start"]["status"] == "ran" and "cluster-ca" in doc["dryRunPlan"]["standIn"]["replaces"]
    )
    assert files_under(rootfs) == [] and not any(rootfs.iterdir())
