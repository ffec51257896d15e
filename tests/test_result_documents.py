"""What a person and a machine read: result documents name host paths and say once which rootfs
they live in; messages read as text (no Python reprs); one summary instead of a warning per file;
errors labelled with what is wrong."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import NO_WAIT, CliRunner

MANIFEST_DIR = "etc/kubernetes/manifests"
# What a Python list, tuple or None looks like when it leaks into a message.
PYTHON_REPR = re.compile(r"\['|'\]|\(\'|\bNone\b")


def paths_in(document: Any) -> Iterator[str]:
    """Every string of the document that looks like a path (``files`` entries, ``path`` fields,
    ``removed``/``kept`` lists), wherever it is nested."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key in ("path", "directory") and isinstance(value, str):
                yield value
            elif key in ("files", "removed", "kept") and isinstance(value, list):
                yield from (v for v in value if isinstance(v, str))
            else:
                yield from paths_in(value)
    elif isinstance(document, list):
        for item in document:
            yield from paths_in(item)


def assert_host_paths(document: dict[str, Any], rootfs: Path, expected: set[str]) -> None:
    assert document["rootfs"] == str(rootfs)
    paths = [p for p in paths_in(document) if p.startswith("/")]
    assert expected <= set(paths)
    assert not [p for p in paths if str(rootfs) in p]


# ---- host paths and one rootfs field ----


def test_phase_result_names_host_paths_and_the_rootfs_once(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    doc = cli("phase", "certs", *node_args, "-o", "json").json()
    assert_host_paths(doc, rootfs, {"/etc/kubernetes/pki/ca.key", "/etc/kubernetes/pki/apiserver.crt"})


def test_check_expiration_names_host_paths_and_the_rootfs(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    assert cli("phase", "certs", *node_args).code == 0
    doc = cli("certs", "check-expiration", "--rootfs", str(rootfs), "-o", "json").json()
    assert doc["kind"] == "CertificateExpiration"
    assert_host_paths(doc, rootfs, {"/etc/kubernetes/pki/apiserver.crt", "/etc/kubernetes/admin.conf"})


def test_renew_names_host_paths_and_the_rootfs(cli: CliRunner, node_args: list[str], rootfs: Path) -> None:
    assert cli("phase", "certs", *node_args).code == 0
    doc = cli("certs", "renew", "apiserver", "--rootfs", str(rootfs), "-o", "json").json()
    assert_host_paths(doc, rootfs, {"/etc/kubernetes/pki/apiserver.crt"})


def test_reset_names_host_paths_and_the_rootfs(cli: CliRunner, node_args: list[str], rootfs: Path) -> None:
    assert cli("phase", "certs", *node_args).code == 0
    doc = cli("reset", "--force", "--rootfs", str(rootfs), "-o", "json").json()
    assert doc["kind"] == "ResetResult"
    assert_host_paths(doc, rootfs, {"/etc/kubernetes/pki/ca.key"})


def test_dry_run_plan_names_host_paths_and_the_rootfs(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    doc = cli("init", *node_args, "--dry-run", "-o", "json").json()
    dry = doc.pop("dryRunDir")  # the one real path: where the scratch copy went
    del doc["dryRunPlan"]["directory"]
    assert_host_paths(doc, rootfs, {"/etc/kubernetes/pki/ca.key", "/etc/kubernetes/admin.conf"})
    assert not [p for p in paths_in(doc) if p.startswith(dry)]
    certificates = doc["dryRunPlan"]["certificates"]["certificates"]
    assert {c["name"]: c["path"] for c in certificates}["apiserver"] == "/etc/kubernetes/pki/apiserver.crt"


def test_output_dir_paths_stay_as_given(cli: CliRunner, node_args: list[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    doc = cli("phase", "manifests/kube-scheduler", *node_args, "--output-dir", str(out), "-o", "json").json()
    assert doc["phases"][0]["files"] == [str(out / "kube-scheduler.yaml")]


# ---- --diff shows diffs, not a scratch directory ----


def test_diff_does_not_announce_a_dry_run_directory(
    cli: CliRunner, node_args: list[str], rootfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dry = tmp_path / "scratch"
    monkeypatch.setenv("BOOTSTRAP_DRYRUN_DIR", str(dry))
    text = cli("phase", "manifests", *node_args, "--diff")
    assert text.code == 0, text.stderr
    assert "+++ /etc/kubernetes/manifests/etcd.yaml" in text.stdout
    for output in (text.stdout, text.stderr):
        assert str(dry) not in output and "instead of the real paths" not in output
    shutil.rmtree(dry)  # the scratch directory must be empty or absent for the next run
    result = cli("init", *node_args, *NO_WAIT, "--diff", "-o", "json")
    assert result.code == 0, result.stderr
    assert str(dry) not in result.stdout and str(dry) not in result.stderr
    doc = result.json()
    assert "dryRunDir" not in doc and "directory" not in doc["dryRunPlan"]


# ---- messages read as text ----


def test_dry_run_messages_and_plan_have_no_python_reprs(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    # kubeconfig skipped: its rows of the certificate table are missing, which once read "expires None".
    result = cli("init", *node_args, "--dry-run", "--skip-phases", "kubeconfig")
    assert result.code == 0, result.stderr
    assert not PYTHON_REPR.search(result.stdout), PYTHON_REPR.findall(result.stdout)
    assert not PYTHON_REPR.search(result.stderr), PYTHON_REPR.findall(result.stderr)
    assert (
        "Would label node cp1 node-role.kubernetes.io/control-plane, "
        "node.kubernetes.io/exclude-from-external-load-balancers "
        "and taint it node-role.kubernetes.io/control-plane:NoSchedule"
    ) in result.stderr
    assert re.search(r"^  admin\.conf +missing +signed by ca$", result.stdout, re.M)


# ---- one summary, not a warning per file ----


def test_output_dir_without_a_pki_warns_once(
    cli: CliRunner, node_args: list[str], rootfs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = cli("phase", "manifests", *node_args, "--output-dir", str(out), "-o", "json")
    assert result.code == 0, result.stderr
    warnings = result.json()["warnings"]
    assert len(warnings) == 1, warnings
    assert f"the manifests in {out} refer to 20 files that do not exist" in warnings[0]
    assert result.stderr.count("[warning]") == 1
    # -v lists each one, for whoever wants them.
    verbose = cli("phase", "manifests", *node_args, "--output-dir", str(out), "-v")
    assert "/etc/kubernetes/scheduler.conf is referenced by kube-scheduler" in verbose.stderr


def test_a_mode_problem_is_still_its_own_warning(cli: CliRunner, node_args: list[str], rootfs: Path) -> None:
    assert cli("init", *node_args, *NO_WAIT).code == 0
    os.chmod(rootfs / "etc/kubernetes/scheduler.conf", 0o644)
    doc = cli("phase", "manifests", *node_args, "-o", "json").json()
    assert doc["warnings"] == ["/etc/kubernetes/scheduler.conf has mode 0644, expected 0600"]


# ---- a stray is named by itself ----


def test_stray_error_is_labelled_with_the_strays_own_name(
    cli: CliRunner, node_args: list[str], rootfs: Path
) -> None:
    directory = rootfs / MANIFEST_DIR
    directory.mkdir(parents=True)
    stray = directory / "kube-apiserver.yaml.bak"
    stray.write_text("kind: Pod\n")
    result = cli("phase", "manifests", *node_args, "-o", "json")
    assert result.code == 1
    message = result.json()["error"]["message"]
    assert message.startswith(f"{stray} (a backup or editor leftover): a stray file")
    assert "manifests/etcd" not in message and "manifests/etcd" not in result.stderr
    assert result.stderr.startswith(f"error: {stray}")
