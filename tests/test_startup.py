"""Start-up stays light: building the CLI (and so `bootstrap --help`) imports none of the heavy libraries,
and `phase manifests` on a fresh node (no API server yet) never loads the Kubernetes client.

Only the commands that need them pay for them (the benchmark measures the time; this checks the cause).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import NODE, CliRunner

HEAVY = ("kubernetes", "pydantic", "cryptography", "jinja2", "yaml", "urllib3")


def test_building_the_cli_imports_no_heavy_library() -> None:
    script = (
        "import json, sys; from bootstrap.cli import cli;"
        "cli.main(['--help'], standalone_mode=False);"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_phase_help_lists_the_tree_without_heavy_imports() -> None:
    script = (
        "import json, sys; from bootstrap.cli import cli;"
        "cli.main(['phase', 'certs', '--help'], standalone_mode=False);"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "apiserver-etcd-client" in proc.stdout
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound by this test but not listening: a connect to it is refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def test_manifests_on_a_fresh_node_does_not_import_the_kubernetes_client(
    cli: CliRunner, rootfs: Path, closed_port: int
) -> None:
    # A fresh node: the CA and admin.conf exist, and nothing listens where admin.conf points.
    node = ["--rootfs", str(rootfs), "--node-name", NODE, "--advertise-address", "127.0.0.1"]
    node += ["--apiserver-bind-port", str(closed_port)]
    for phase in ("certs/ca", "kubeconfig/admin"):
        assert cli("phase", phase, *node).code == 0
    assert f"https://127.0.0.1:{closed_port}" in (rootfs / "etc/kubernetes/admin.conf").read_text()
    script = (
        "import json, sys; from bootstrap.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print(json.dumps({'code': code, 'kubernetes': 'kubernetes' in sys.modules}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, "phase", "manifests", *node, "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"code": 0, "kubernetes": False}, proc.stderr
    written = sorted(p.name for p in (rootfs / "etc/kubernetes/manifests").iterdir())
    assert written == [
        "etcd.yaml",
        "kube-apiserver.yaml",
        "kube-controller-manager.yaml",
        "kube-scheduler.yaml",
    ]
