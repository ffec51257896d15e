"""Start-up stays light: building the CLI (and so `bootstrap --help`) imports none of the heavy libraries,
and `phase manifests` on a fresh node (no API server yet) never loads the Kubernetes client.

Only the commands that need them pay for them (the benchmark measures the time; this checks the cause).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import NODE, CliRunner

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
HEAVY = ("kubernetes", "pydantic", "cryptography", "jinja2", "yaml", "urllib3")


def test_building_the_cli_imports_no_heavy_library() -> None:
    script = (
        "import json, sys; from bootstrap.cli.main import cli;"
        "cli.main(['--help'], standalone_mode=False);"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_help_does_not_import_pathlib() -> None:
    # pathlib (with urllib.parse and ipaddress) is ~6% of `bootstrap --help`, whose target is 1.5x
    # `import click`: path options convert through options.PathParam, and modules import Path for typing.
    script = (
        "import json, sys; from bootstrap.cli.main import cli;"
        "cli.main(['--help'], standalone_mode=False);"
        "print(json.dumps('pathlib' in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) is False


def test_top_level_help_does_not_build_the_phase_tree() -> None:
    # The tree imports every phase module and the cert and kubeconfig tables; only phase commands need it.
    script = (
        "import json, sys; from bootstrap.cli.main import cli;"
        "cli.main(['--help'], standalone_mode=False);"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('bootstrap.phases', 'bootstrap.pki',"
        " 'bootstrap.pki.kubeconfig_files', 'bootstrap.host.fs', 'bootstrap.workflow.tree')))))"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "init" in proc.stdout
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_phase_help_lists_the_tree_without_heavy_imports() -> None:
    script = (
        "import json, sys; from bootstrap.cli.main import cli;"
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


@pytest.fixture
def accepting_port() -> Iterator[int]:
    """A loopback port that accepts every connection and hangs up at once (an API server that is up
    but answers nothing useful)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def hang_up() -> None:
            with contextlib.suppress(OSError):  # the listening socket closed: the test is over
                while True:
                    server.accept()[0].close()

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        yield server.getsockname()[1]
        server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        thread.join(timeout=5)


def manifests_on_a_node(cli: CliRunner, rootfs: Path, api_port: int) -> dict[str, object]:
    """Make the CA and admin.conf (server https://127.0.0.1:<api_port>), then run ``phase manifests`` in
    a fresh interpreter; its exit code and whether it loaded the Kubernetes client (and ssl)."""
    node = ["--rootfs", str(rootfs), "--node-name", NODE, "--advertise-address", "127.0.0.1"]
    node += ["--apiserver-bind-port", str(api_port)]
    for phase in ("certs/ca", "kubeconfig/admin"):
        assert cli("phase", phase, *node).code == 0
    assert f"https://127.0.0.1:{api_port}" in (rootfs / "etc/kubernetes/admin.conf").read_text()
    script = (
        "import json, sys; from bootstrap.cli.main import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print(json.dumps({'code': code, 'kubernetes': 'kubernetes' in sys.modules,"
        " 'ssl': 'ssl' in sys.modules}))"
    )
    # Straight to the endpoint, as on a node without a proxy (with one, the client would be asked).
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    proc = subprocess.run(
        [sys.executable, "-c", script, "phase", "manifests", *node, "-o", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    written = sorted(p.name for p in (rootfs / "etc/kubernetes/manifests").iterdir())
    assert written == [f"{c}.yaml" for c in COMPONENTS], proc.stderr
    return result


def test_manifests_on_a_fresh_node_does_not_import_the_kubernetes_client(
    cli: CliRunner, rootfs: Path, closed_port: int
) -> None:
    # A fresh node: the CA and admin.conf exist, and nothing listens where admin.conf points.
    assert manifests_on_a_node(cli, rootfs, closed_port) == {"code": 0, "kubernetes": False, "ssl": False}


def test_manifests_still_asks_the_api_for_mirror_pods_when_something_listens(
    cli: CliRunner, rootfs: Path, accepting_port: int
) -> None:
    # The client is consulted as before (its failure to get an answer is no error of the phase).
    assert manifests_on_a_node(cli, rootfs, accepting_port) == {"code": 0, "kubernetes": True, "ssl": True}


AFTER_MANIFESTS = (
    "kubelet-start,wait-control-plane,upload-config,mark-control-plane,bootstrap-token,kubelet-finalize,"
    "addon,show-join-command"
)
# Records every KeySource.prefetch call: whether the config loader was loaded yet (a run without a file
# never needs pydantic, so its import tells nothing), the algorithm and the count; then runs the real
# entry point.
PREFETCH_SPY = (
    "import json, sys\n"
    "import bootstrap.pki.keys as keys\n"
    "calls = []\n"
    "real = keys.KeySource.prefetch\n"
    "def spy(self, count):\n"
    "    calls.append(['bootstrap.config.loader' in sys.modules, self.algorithm, count])\n"
    "    return real(self, count)\n"
    "keys.KeySource.prefetch = spy\n"
    "from bootstrap.cli.main import main\n"
    "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    code = exc.code\n"
    "print(json.dumps({'code': code, 'calls': calls}))"
)


def init_prefetches(rootfs: Path, *extra: str) -> dict[str, object]:
    argv = ["init", "--rootfs", str(rootfs), "--skip-phases", AFTER_MANIFESTS, "-o", "json", *extra]
    argv += ["--ignore-preflight-errors", "all"]
    proc = subprocess.run(
        [sys.executable, "-c", PREFETCH_SPY, *argv], capture_output=True, text=True, check=False, timeout=120
    )
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_init_without_a_config_file_starts_keys_before_reading_the_config(rootfs: Path) -> None:
    # Without a file the algorithm can only be the default: generation overlaps the config's loading.
    result = init_prefetches(rootfs, "--node-name", NODE, "--advertise-address", "127.0.0.1")
    assert result["code"] == 0
    calls = result["calls"]
    assert isinstance(calls, list) and len(calls) == 2
    (early_loaded, early_algorithm, early), (late_loaded, _, late) = calls
    assert (early_loaded, early_algorithm, early) == (False, "RSA-2048", os.cpu_count() or 1)
    # The plan's prefetch only tops up: 10 certificates, sa and 5 kubeconfigs need 16 keys in all.
    assert late_loaded is True and early + late == 16


def test_init_with_a_config_file_starts_keys_only_once_the_config_names_the_algorithm(rootfs: Path) -> None:
    config = rootfs.parent / "ecdsa.yaml"
    config.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
        f"nodeRegistration:\n  name: {NODE}\nlocalAPIEndpoint:\n  advertiseAddress: 127.0.0.1\n---\n"
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: ECDSA-P256\n"
    )
    result = init_prefetches(rootfs, "--config", str(config))
    assert result["code"] == 0
    assert result["calls"] == [[True, "ECDSA-P256", 16]]


def test_init_with_a_config_file_that_cannot_choose_the_algorithm_starts_keys_before_reading_it(
    rootfs: Path,
) -> None:
    # The file never names encryptionAlgorithm: the default holds, so keys start as without a file.
    config = rootfs.parent / "plain.yaml"
    config.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
        f"nodeRegistration:\n  name: {NODE}\nlocalAPIEndpoint:\n  advertiseAddress: 127.0.0.1\n"
    )
    result = init_prefetches(rootfs, "--config", str(config))
    assert result["code"] == 0
    calls = result["calls"]
    assert isinstance(calls, list) and len(calls) == 2
    (early_loaded, early_algorithm, early), (late_loaded, _, late) = calls
    assert (early_loaded, early_algorithm, early) == (False, "RSA-2048", os.cpu_count() or 1)
    assert late_loaded is True and early + late == 16


# The module families loaded when each KeySource.prefetch call starts keys, then the real entry point.
IMPORTS_AT_PREFETCH_SPY = (
    "import json, sys\n"
    "import bootstrap.pki.keys as keys\n"
    "watched = json.loads(sys.argv.pop(1))\n"
    "calls = []\n"
    "real = keys.KeySource.prefetch\n"
    "def spy(self, count):\n"
    "    calls.append(sorted({w for w in watched for m in sys.modules if m == w or m.startswith(w + '.')}))\n"
    "    return real(self, count)\n"
    "keys.KeySource.prefetch = spy\n"
    "from bootstrap.cli.main import main\n"
    "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    code = exc.code\n"
    "print(json.dumps({'code': code, 'calls': calls}))"
)
# Loaded only once a phase runs that needs them: the join, etcd and addon phases' libraries, the API
# client, the template engine, YAML and X.509 (the phase modules import them inside their run functions).
PHASE_LIBRARIES = (
    "bootstrap.addons",
    "bootstrap.etcd",
    "bootstrap.cluster",
    "bootstrap.workflow.joindata",
    "bootstrap.components.render",
    "kubernetes",
    "urllib3",
    "pydantic",
    "jinja2",
    "yaml",
    "cryptography.x509",
)


def test_init_starts_keys_before_the_phase_tree_and_tops_them_up_before_any_phase_library(
    rootfs: Path,
) -> None:
    # Every module loaded before the first keys start delays all of them (one core idles meanwhile);
    # every module loaded before the plan's top-up may leave the workers idle once the first keys are done.
    watched = ["bootstrap.phases", "bootstrap.config.model", *PHASE_LIBRARIES]
    argv = ["init", "--rootfs", str(rootfs), "--node-name", NODE, "--advertise-address", "127.0.0.1"]
    argv += ["--skip-phases", AFTER_MANIFESTS, "--ignore-preflight-errors", "all", "-o", "json"]
    proc = subprocess.run(
        [sys.executable, "-c", IMPORTS_AT_PREFETCH_SPY, json.dumps(watched), *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, proc.stderr
    early, top_up = result["calls"]
    assert early == []
    # Planning needs the tree (every phase module) and the config, and nothing the phases only run.
    assert top_up == ["bootstrap.config.model", "bootstrap.phases"]
