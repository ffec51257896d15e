"""kubeadm's flag names on init and its phases: each lands in its config field; the few we refuse say so."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bootstrap.config import Config
from bootstrap.workflow.rundata import RunData
from tests.conftest import CliRunner, files_under

Getter = Callable[[Config], Any]

# flag, value, where the value must land, the value expected there
KUBEADM_FLAGS: list[tuple[str, str, Getter, Any]] = [
    (
        "--apiserver-advertise-address",
        "10.1.2.3",
        lambda c: c.init.local_api_endpoint.advertise_address,
        "10.1.2.3",
    ),
    ("--apiserver-bind-port", "7443", lambda c: c.init.local_api_endpoint.bind_port, 7443),
    (
        "--apiserver-cert-extra-sans",
        "api.example.test,10.9.9.9",
        lambda c: c.cluster.api_server.cert_sans,
        ["api.example.test", "10.9.9.9"],
    ),
    ("--cert-dir", "/srv/pki", lambda c: c.cluster.certificates_dir, "/srv/pki"),
    (
        "--control-plane-endpoint",
        "cp.example.test:6443",
        lambda c: c.cluster.control_plane_endpoint,
        "cp.example.test:6443",
    ),
    ("--kubernetes-version", "v1.33.1", lambda c: c.cluster.kubernetes_version, "v1.33.1"),
    ("--node-name", "worker-7", lambda c: c.init.node_registration.name, "worker-7"),
    ("--pod-network-cidr", "10.244.0.0/16", lambda c: c.cluster.networking.pod_subnet, "10.244.0.0/16"),
    ("--service-cidr", "10.200.0.0/16", lambda c: c.cluster.networking.service_subnet, "10.200.0.0/16"),
    ("--service-dns-domain", "corp.example", lambda c: c.cluster.networking.dns_domain, "corp.example"),
    (
        "--token",
        "k8sabc.0123456789k8sabc",
        lambda c: c.init.bootstrap_tokens[0].token,
        "k8sabc.0123456789k8sabc",
    ),
    ("--token-ttl", "2h", lambda c: c.init.bootstrap_tokens[0].ttl, timedelta(hours=2)),
    (
        "--cri-socket",
        "unix:///run/crio/crio.sock",
        lambda c: c.init.node_registration.cri_socket,
        "unix:///run/crio/crio.sock",
    ),
    (
        "--image-repository",
        "registry.example.test/k8s",
        lambda c: c.cluster.image_repository,
        "registry.example.test/k8s",
    ),
]
COMMANDS = [("init",), ("init", "phase", "certs"), ("phase", "manifests", "etcd")]


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[RunData]:
    """Stop every run before its first phase, keeping the run data it would have used."""
    runs: list[RunData] = []

    def capture(rd: RunData, command: str, make_steps: Any) -> dict[str, Any]:
        rd.config  # noqa: B018 (loading the config is the point: flags are applied there)
        runs.append(rd)
        return {}

    monkeypatch.setattr("bootstrap.workflow.runner.run_phases", capture)
    return runs


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
@pytest.mark.parametrize(
    ("flag", "value", "field", "expected"), KUBEADM_FLAGS, ids=[f[0] for f in KUBEADM_FLAGS]
)
def test_kubeadm_flag_lands_in_its_config_field(
    cli: CliRunner,
    rootfs: Path,
    seen: list[RunData],
    command: tuple[str, ...],
    flag: str,
    value: str,
    field: Getter,
    expected: Any,
) -> None:
    base = {"--node-name": "cp1", "--apiserver-advertise-address": "10.0.0.1"}
    base[flag] = value
    args = [a for pair in base.items() for a in pair]
    result = cli(*command, "--rootfs", str(rootfs), *args)
    assert result.code == 0, result.stderr
    assert field(seen[-1].config) == expected


def test_the_older_short_name_stays_an_alias(cli: CliRunner, rootfs: Path, seen: list[RunData]) -> None:
    result = cli("init", "--rootfs", str(rootfs), "--node-name", "cp1", "--advertise-address", "10.4.4.4")
    assert result.code == 0, result.stderr
    assert seen[-1].config.advertise_address == "10.4.4.4"


def test_token_flag_overrides_the_files_first_token_keeping_its_other_fields(
    cli: CliRunner, rootfs: Path, tmp_path: Path, seen: list[RunData]
) -> None:
    config = tmp_path / "kubeadm.yaml"
    config.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration: {name: cp1}\n"
        "localAPIEndpoint: {advertiseAddress: 10.0.0.1}\n"
        "bootstrapTokens:\n- token: aaaaaa.bbbbbbbbbbbbbbbb\n  description: mine\n"
    )
    result = cli(
        "init", "--config", str(config), "--rootfs", str(rootfs), "--token", "cccccc.dddddddddddddddd"
    )
    assert result.code == 0, result.stderr
    token = seen[-1].config.init.bootstrap_tokens[0]
    assert (token.token, token.description) == ("cccccc.dddddddddddddddd", "mine")


def test_a_malformed_token_is_refused_naming_the_flag_without_echoing_its_secret(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    result = cli("init", *node_args, "--token", "abcdef.NOT-A-VALID-SECRET", "--dry-run")
    assert result.code == 3, result.stderr
    assert "--token (bootstrapTokens[0].token)" in result.stderr
    assert "NOT-A-VALID-SECRET" not in result.stderr + result.stdout
    assert files_under(rootfs) == []


@pytest.mark.parametrize("command", [("init",), ("init", "phase", "manifests"), ("phase", "manifests")])
def test_patches_is_refused_as_not_supported_yet(
    cli: CliRunner, node_args: list[str], rootfs: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    result = cli(*command, *node_args, "--patches", str(tmp_path))
    assert result.code == 2
    error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "--patches" in error[0] and "not supported yet" in error[0]
    assert files_under(rootfs) == []


def test_skip_token_print_withholds_the_token_from_the_join_command(
    cli: CliRunner, node_args: list[str], rootfs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bootstrap.output import Reporter
    from bootstrap.phases.postinit import SHOW_JOIN_COMMAND
    from bootstrap.workflow.rundata import RunOptions
    from tests.conftest import ADDRESS, NODE

    assert cli("phase", "certs", "ca", *node_args).code == 0
    token = "k8sabc.0123456789k8sabc"
    printed = {}
    for skip in (False, True):
        run = RunOptions(
            overrides={"node-name": NODE, "apiserver-advertise-address": ADDRESS},
            rootfs=rootfs,
            skip_token_print=skip,
        )
        rd = RunData(run, Reporter())
        rd.bootstrap_tokens = [token]
        assert SHOW_JOIN_COMMAND.run is not None
        capsys.readouterr()
        SHOW_JOIN_COMMAND.run(rd)
        printed[skip] = capsys.readouterr().out
    assert f"--token {token}" in printed[False]
    assert token not in printed[True] and "--token <value withheld>" in printed[True]
