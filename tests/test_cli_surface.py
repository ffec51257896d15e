"""The command-line surface a kubeadm user expects: init phase, global -o/-v, exit 2 with a suggestion,
a result document on every failure, durations with units, version labels, kubeadm's placeholders."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import NO_WAIT, CliRunner, files_under

NODE_FLAGS = ["--node-name", "cp1", "--apiserver-advertise-address", "10.0.0.1"]
CA = ["etc/kubernetes/pki/ca.crt", "etc/kubernetes/pki/ca.key"]
APISERVER = ["etc/kubernetes/pki/apiserver.crt", "etc/kubernetes/pki/apiserver.key"]


def document(text: str, output: str) -> dict[str, Any]:
    loaded = json.loads(text) if output == "json" else yaml.safe_load(text)
    assert isinstance(loaded, dict), text
    return loaded


# ---- bootstrap init phase ... --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "written"),
    [
        (["certs"], 22),
        (["certs", "all"], 22),
        (["certs", "ca"], 2),
    ],
)
def test_init_phase_runs_a_subtree_or_one_phase(
    cli: CliRunner, rootfs: Path, path: list[str], written: int
) -> None:
    result = cli("init", "phase", *path, "--rootfs", str(rootfs), *NODE_FLAGS, "-o", "json")
    assert result.code == 0, result.stderr
    assert len(files_under(rootfs)) == written
    assert result.json()["ok"] is True


@pytest.mark.parametrize("spelling", [["certs", "apiserver"], ["certs/apiserver"]])
def test_init_phase_runs_a_child_in_both_spellings(cli: CliRunner, rootfs: Path, spelling: list[str]) -> None:
    assert cli("init", "phase", "certs", "ca", "--rootfs", str(rootfs), *NODE_FLAGS).code == 0
    result = cli("init", "phase", *spelling, "--rootfs", str(rootfs), *NODE_FLAGS, "-o", "json")
    assert result.code == 0, result.stderr
    assert [p["path"] for p in result.json()["phases"]] == ["certs/apiserver"]
    assert files_under(rootfs) == sorted(APISERVER + CA)


def test_flags_given_to_init_before_phase_apply_to_the_phase(cli: CliRunner, rootfs: Path) -> None:
    result = cli("init", "--rootfs", str(rootfs), *NODE_FLAGS, "-o", "json", "phase", "certs", "ca")
    assert result.code == 0, result.stderr
    assert result.json()["phases"][0]["path"] == "certs/ca"
    assert files_under(rootfs) == CA


def test_init_help_names_init_phase(cli: CliRunner) -> None:
    assert "bootstrap init phase <name>" in cli("init", "--help").stdout
    phase_help = cli("init", "phase", "--help").stdout
    assert "/apiserver-etcd-client" in phase_help and "Usage: bootstrap init phase" in phase_help


# ---- -o and -v before or after the command, on every command -------------------------------------


def _commands(rootfs: Path, tmp_path: Path) -> dict[str, list[str]]:
    """One invocation of every command that succeeds on an empty rootfs (the config is written lazily)."""
    config = tmp_path / "kubeadm.yaml"
    if tmp_path.is_dir() and not config.exists():
        config.write_text(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nnodeRegistration: {name: cp1}\n"
            "localAPIEndpoint: {advertiseAddress: 10.0.0.1}\n"
        )
    root = ["--rootfs", str(rootfs)]
    return {
        "init": ["init", *root, *NODE_FLAGS, "--dry-run"],
        "init phase": ["init", "phase", "certs", "ca", *root, *NODE_FLAGS],
        "phase": ["phase", "certs", "ca", *root, *NODE_FLAGS],
        "config validate": ["config", "validate", "--config", str(config)],
        "config print": ["config", "print", "init-defaults"],
        "reset": ["reset", "--force", *root],
        "serve-manifests --check": ["serve-manifests", "--check", "--config", str(config), *root],
        "certs check-expiration": ["certs", "check-expiration", *root],
        "certs renew": ["certs", "renew", "all", *root],
        "certs install-timer": ["certs", "install-timer", "--executable", "/usr/bin/bootstrap", *root],
        "upgrade plan": ["upgrade", "plan", "--config", str(config), *root],
        "upgrade apply --dry-run": ["upgrade", "apply", "--config", str(config), "--dry-run", *root],
    }


COMMAND_NAMES = list(_commands(Path("/r"), Path("/t")))


@pytest.mark.parametrize("output", ["json", "yaml"])
@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_output_before_or_after_the_command_prints_one_document(
    cli: CliRunner, rootfs: Path, tmp_path: Path, name: str, where: str, output: str
) -> None:
    args = _commands(rootfs, tmp_path)[name]
    line = ["-o", output, *args] if where == "before" else [*args, "-o", output]
    result = cli(*line)
    assert result.code == 0, result.stderr
    doc = document(result.stdout, output)
    assert doc["ok"] is True and doc["apiVersion"] == "bootstrap.kube-bootstrap.io/v1alpha1"


@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_verbose_before_or_after_the_command(
    cli: CliRunner, rootfs: Path, tmp_path: Path, name: str, where: str
) -> None:
    args = _commands(rootfs, tmp_path)[name]
    result = cli(*(["-v", *args] if where == "before" else [*args, "--verbose"]))
    assert result.code == 0, result.stderr


def test_verbose_before_the_command_shows_debug_lines(cli: CliRunner, rootfs: Path) -> None:
    args = ["init", "--rootfs", str(rootfs), *NODE_FLAGS, *NO_WAIT]
    assert "[debug]" not in cli(*args, "--dry-run").stderr
    assert "[debug]" in cli("-v", *args, "--dry-run").stderr


def test_the_option_nearest_the_command_wins(cli: CliRunner) -> None:
    result = cli("-o", "json", "config", "print", "init-defaults", "-o", "yaml")
    assert result.code == 0, result.stderr
    assert document(result.stdout, "yaml")["kind"] == "ConfigPrintResult"
    assert not result.stdout.lstrip().startswith("{")


# ---- usage errors: exit 2, with the closest valid name --------------------------------------------


@pytest.mark.parametrize(
    ("args", "suggestion"),
    [
        (["phase", "cert"], "did you mean certs?"),
        (["init", "phase", "cert"], "did you mean certs?"),
        (["phase", "certs", "apiserverx"], "did you mean apiserver?"),
        (["phase", "certs/apiserverx"], "did you mean certs/apiserver?"),
        (["certs", "renew", "apiserverx"], "did you mean apiserver?"),
        (["certs", "renw", "all"], "did you mean renew?"),
        (["confg", "validate"], "did you mean config?"),
        (["rest", "--force"], "did you mean reset?"),
        (["config", "print", "init-default"], "did you mean init-defaults?"),
        (["upgrade", "aply", "v1.34.2"], "did you mean apply?"),
        (["upgrad", "plan"], "did you mean upgrade?"),
    ],
)
def test_unknown_name_exits_2_with_the_closest_valid_one(
    cli: CliRunner, rootfs: Path, args: list[str], suggestion: str
) -> None:
    result = cli(*args, "--rootfs", str(rootfs))
    assert result.code == 2, result.stderr
    assert suggestion in result.stderr
    assert "Traceback" not in result.stderr
    assert list(rootfs.iterdir()) == []


def test_usage_error_with_json_output_prints_a_failure_document(cli: CliRunner, rootfs: Path) -> None:
    result = cli("certs", "renew", "apiserverx", "--rootfs", str(rootfs), "-o", "json")
    assert result.code == 2
    doc = result.json()
    assert doc["ok"] is False and doc["error"]["exitCode"] == 2
    assert "apiserverx" in doc["error"]["message"]


# ---- every failure keeps its result document ------------------------------------------------------


@pytest.mark.parametrize("output", ["json", "yaml"])
def test_reset_internal_error_still_prints_its_document(
    cli: CliRunner, rootfs: Path, monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    def broken(*_: object, **__: object) -> None:
        raise ModuleNotFoundError("No module named 'kubernetes'")

    monkeypatch.setattr("bootstrap.host.reset.run_reset", broken)
    result = cli("reset", "--force", "--rootfs", str(rootfs), "-o", output)
    assert result.code == 1
    doc = document(result.stdout, output)
    assert doc["kind"] == "ResetResult" and doc["ok"] is False
    assert doc["error"]["exitCode"] == 1
    assert "ModuleNotFoundError" in doc["error"]["message"] and "kubernetes" in doc["error"]["message"]
    assert "internal error: ModuleNotFoundError" in result.stderr


@pytest.mark.parametrize("name", ["config validate", "serve-manifests --check", "init"])
def test_config_error_keeps_the_document_of_every_command(
    cli: CliRunner, rootfs: Path, tmp_path: Path, name: str
) -> None:
    args = _commands(rootfs, tmp_path)[name]
    (tmp_path / "kubeadm.yaml").write_text("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfig\n")
    if "--config" not in args:
        args = [*args, "--config", str(tmp_path / "kubeadm.yaml")]
    result = cli(*args, "-o", "json")
    assert result.code == 3, result.stderr
    doc = result.json()
    assert doc["ok"] is False and doc["error"]["exitCode"] == 3 and "kind" in doc["error"]["message"]


def test_a_declined_reset_prints_its_document(cli: CliRunner, rootfs: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr("click.confirm", lambda *a, **k: (_ for _ in ()).throw(__import__("click").Abort()))
    result = cli("reset", "--rootfs", str(rootfs), "-o", "json")
    assert result.code == 1
    assert result.json()["ok"] is False and result.json()["kind"] == "ResetResult"


# ---- durations need units; version labels resolve offline with a warning --------------------------


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["init", "--timeout", "4"], "--timeout: '4' has no unit (did you mean 4s?)"),
        (["init", "--settle", "5"], "--settle: '5' has no unit (did you mean 5s?)"),
        (["init", "--token-ttl", "24"], "--token-ttl: '24' has no unit (did you mean 24s?)"),
        (["reset", "--force", "--timeout", "60"], "--timeout: '60' has no unit (did you mean 60s?)"),
        (
            ["certs", "renew", "all", "--if-expiring-within", "720"],
            "--if-expiring-within: '720' has no unit (did you mean 720s?)",
        ),
    ],
)
def test_a_duration_without_unit_is_refused(
    cli: CliRunner, rootfs: Path, args: list[str], option: str
) -> None:
    extra = NODE_FLAGS if args[0] == "init" else []
    result = cli(*args, "--rootfs", str(rootfs), *extra)
    assert result.code == 2, result.stderr
    assert option in result.stderr
    assert list(rootfs.iterdir()) == []


def test_token_ttl_zero_means_never_and_is_accepted(cli: CliRunner, rootfs: Path) -> None:
    result = cli("init", "--rootfs", str(rootfs), *NODE_FLAGS, "--token-ttl", "0", "--dry-run", "-o", "json")
    assert result.code == 0, result.stderr


@pytest.mark.parametrize(("label", "version"), [("stable-1", "v1.35.0"), ("stable-1.34", "v1.34.2")])
def test_version_label_resolves_offline_with_a_warning_naming_it(
    cli: CliRunner, rootfs: Path, label: str, version: str
) -> None:
    result = cli(
        "init", "--rootfs", str(rootfs), *NODE_FLAGS, "--kubernetes-version", label, "--dry-run", "-o", "json"
    )
    assert result.code == 0, result.stderr
    warnings = [w for w in result.json()["warnings"] if label in w]
    assert len(warnings) == 1 and version in warnings[0]
    assert f"[warning] kubernetesVersion: '{label}' resolved offline to {version}" in result.stderr
    assert f"kube-apiserver:{version}" in result.stdout


def test_an_unsupported_minor_label_is_a_config_error(cli: CliRunner, rootfs: Path) -> None:
    result = cli("init", "--rootfs", str(rootfs), *NODE_FLAGS, "--kubernetes-version", "stable-1.20")
    assert result.code == 3 and "--kubernetes-version" in result.stderr


# ---- config print init-defaults: kubeadm's placeholders unless --from-host -------------------------


def test_init_defaults_prints_kubeadms_placeholders(cli: CliRunner) -> None:
    result = cli("config", "print", "init-defaults")
    assert result.code == 0, result.stderr
    init = next(d for d in yaml.safe_load_all(result.stdout) if d["kind"] == "InitConfiguration")
    assert init["nodeRegistration"]["name"] == "node"
    assert init["localAPIEndpoint"]["advertiseAddress"] == "1.2.3.4"
    assert init["bootstrapTokens"][0]["token"] == "abcdef.0123456789abcdef"
    assert "placeholder" in result.stderr


def test_init_defaults_from_host_uses_this_hosts_values(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "Build-Host-7")
    result = cli(
        "config", "print", "init-defaults", "--from-host", "--apiserver-advertise-address", "10.3.3.3"
    )
    assert result.code == 0, result.stderr
    init = next(d for d in yaml.safe_load_all(result.stdout) if d["kind"] == "InitConfiguration")
    assert init["nodeRegistration"]["name"] == "build-host-7"
    assert init["localAPIEndpoint"]["advertiseAddress"] == "10.3.3.3"
    assert "abcdef.0123456789abcdef" not in result.stdout


# ---- serve-manifests --check ---------------------------------------------------------------------


def test_serve_manifests_check_prints_the_pod_list_and_exits(
    cli: CliRunner, rootfs: Path, tmp_path: Path
) -> None:
    args = _commands(rootfs, tmp_path)["serve-manifests --check"]
    text = cli(*args)
    assert text.code == 0, text.stderr
    pods = json.loads(text.stdout)
    assert pods["kind"] == "PodList"
    assert sorted(p["metadata"]["name"] for p in pods["items"]) == [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ]
    doc = cli(*args, "-o", "json").json()
    assert doc["kind"] == "ServeManifestsCheck" and doc["podList"] == pods
    assert files_under(rootfs) == []


@pytest.mark.parametrize(
    "args",
    [
        ["init", "phase", "certs", "--bogus", "-o", "json"],
        ["-o", "json", "init", "phase", "certs", "--bogus"],
        ["init", "--bogus", "-o", "json"],
        ["init", "phase", "-o", "json", "certs", "--timeout", "4"],
    ],
)
def test_a_usage_error_anywhere_still_prints_the_document(cli: CliRunner, args: list[str]) -> None:
    result = cli(*args)
    assert result.code == 2
    doc = result.json()
    assert doc["ok"] is False and doc["error"]["exitCode"] == 2


@pytest.mark.parametrize("group", [["certs"], ["config"], ["phase"], ["init", "phase"]])
def test_a_group_takes_output_before_its_subcommand(
    cli: CliRunner, rootfs: Path, tmp_path: Path, group: list[str]
) -> None:
    commands = _commands(rootfs, tmp_path)
    rest = {
        "certs": commands["certs check-expiration"][1:],
        "config": commands["config validate"][1:],
        "phase": commands["phase"][1:],
        "init phase": commands["init phase"][2:],
    }[" ".join(group)]
    result = cli(*group, "-o", "json", *rest)
    assert result.code == 0, result.stderr
    assert result.json()["ok"] is True


def test_a_long_error_message_stays_one_line_in_yaml(cli: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "kubeadm.yaml"
    config.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"
        "networking:\n  serviceSubnet: '10.96.0.0/12 '\n"
    )
    result = cli("config", "validate", "--config", str(config), "-o", "yaml")
    assert result.code == 3
    [line] = [line for line in result.stdout.splitlines() if line.lstrip().startswith("message:")]
    assert "networking.serviceSubnet" in line and line.rstrip().endswith("characters)'")
