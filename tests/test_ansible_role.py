"""The Ansible role ``kube_bootstrap`` run by the real ``ansible-playbook`` against localhost.

Every run uses its own rootfs in a short temporary directory and moves every port to a free one (the same
settings ``tests/standin/harness.init_config`` uses, passed through the role's variables). A kubelet
stand-in starts once kubelet-start has written its config and brings the API server up, as systemd
would restart the real kubelet.

The role installs the package the way an offline host does: from a wheelhouse built once per run
(``pip wheel`` of the project with the test environment's versions of its dependencies) with
``--no-index --find-links``, into a venv that does not see the interpreter's own packages, and with
this environment's pip settings removed, so nothing else can supply a dependency. One test lets the
full role install into a fresh venv; the others point ``kube_bootstrap_venv`` at a venv the role's
install tasks built once, so the install is skipped.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bootstrap import __version__
from bootstrap.host.cert_timer import UNIT_NAME
from tests.conftest import built_once
from tests.standin.harness import ADDRESS, NODE, Ports, allocate_ports, kubelet_once_configured
from tests.test_init_e2e import plant_host_tools
from tests.tools import tool

REPO = Path(__file__).resolve().parent.parent
ROLES = REPO / "ansible" / "roles"
ROLE = ROLES / "kube_bootstrap"
# What a run of the role needs importable in its venv: the CLI and the client that talks to the API.
RUNTIME_IMPORTS = ("bootstrap.cli.main", "kubernetes", "click", "yaml", "cryptography", "pydantic")
CLUSTER_PHASES = [
    "wait-control-plane",
    "upload-config",
    "mark-control-plane",
    "bootstrap-token",
    "kubelet-finalize",
    "addon",
    "show-join-command",
]
PLAYBOOK = """\
- name: Bootstrap the control plane
  hosts: control_plane
  gather_facts: false
  roles:
    - role: kube_bootstrap
"""
INSTALL_PLAYBOOK = """\
- name: Install kube-bootstrap
  hosts: control_plane
  gather_facts: false
  tasks:
    - name: Run only the role's install tasks
      ansible.builtin.include_role:
        name: kube_bootstrap
        tasks_from: install
"""
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
EXPECTED_FILES = [
    "etc/kubernetes/pki/ca.key",
    "etc/kubernetes/pki/apiserver.crt",
    "etc/kubernetes/pki/etcd/ca.crt",
    "etc/kubernetes/pki/sa.pub",
    "etc/kubernetes/admin.conf",
    "etc/kubernetes/super-admin.conf",
    "etc/kubernetes/kubelet.conf",
    "etc/kubernetes/controller-manager.conf",
    "etc/kubernetes/scheduler.conf",
    "etc/kubernetes/manifests/etcd.yaml",
    "etc/kubernetes/manifests/kube-apiserver.yaml",
    "etc/kubernetes/manifests/kube-controller-manager.yaml",
    "etc/kubernetes/manifests/kube-scheduler.yaml",
    "var/lib/kubelet/config.yaml",
]


def port_vars(ports: Ports) -> dict[str, Any]:
    """The role variables that put every component on ``ports`` (cf. harness.init_config)."""

    def args(**flags: str) -> list[dict[str, str]]:
        return [{"name": name.replace("_", "-"), "value": value} for name, value in flags.items()]

    peer, client = f"https://{ADDRESS}:{ports.etcd_peer}", f"https://{ADDRESS}:{ports.etcd_client}"
    return {
        "kube_bootstrap_advertise_address": ADDRESS,
        "kube_bootstrap_bind_port": ports.apiserver,
        "kube_bootstrap_extra_args": {
            "controllerManager": args(secure_port=str(ports.controller_manager)),
            "scheduler": args(secure_port=str(ports.scheduler)),
            "etcd": args(
                listen_metrics_urls=f"http://{ADDRESS}:{ports.etcd_metrics}",
                listen_client_urls=client,
                advertise_client_urls=client,
                listen_peer_urls=peer,
                initial_advertise_peer_urls=peer,
                initial_cluster=f"{NODE}={peer}",
            ),
        },
        "kube_bootstrap_config": {
            # failSwapOn: false keeps the Swap preflight check quiet on machines with swap.
            "KubeletConfiguration": {
                "healthzBindAddress": ADDRESS,
                "healthzPort": ports.kubelet_healthz,
                "failSwapOn": False,
            }
        },
    }


@dataclass
class PlayRun:
    code: int
    output: str

    def recap(self) -> dict[str, dict[str, int]]:
        """Per host: ok, changed, unreachable, failed, as the PLAY RECAP says (what molecule parses)."""
        keys = ("ok", "changed", "unreachable", "failed")
        return {
            m[1]: dict(zip(keys, map(int, m.groups()[1:]), strict=True)) for m in RECAP.finditer(self.output)
        }


@dataclass
class Site:
    """One control-plane host (or more) on localhost, each with its own rootfs, plus the play's variables."""

    base: Path
    venv: Path
    hosts: list[str] = field(default_factory=lambda: [NODE])
    variables: dict[str, Any] = field(default_factory=dict)

    def rootfs(self, host: str = NODE) -> Path:
        return self.base / f"rootfs-{host}"

    def config_file(self, host: str = NODE) -> Path:
        return self.base / f"etc-{host}" / "kubeadm.yaml"

    def play(self, *options: str, playbook: str = PLAYBOOK, **overrides: Any) -> PlayRun:
        variables = {
            "kube_bootstrap_venv": str(self.venv),
            "kube_bootstrap_version": __version__,
            "kube_bootstrap_node_name": NODE,
            "kube_bootstrap_encryption_algorithm": "ECDSA-P256",  # fast keys
            "kube_bootstrap_settle": "1s",
            "kube_bootstrap_timeout": "30s",
            **self.variables,
            **overrides,
        }
        (self.base / "vars.json").write_text(json.dumps(variables))
        lines = ["[control_plane]"]
        for host in self.hosts:
            self.rootfs(host).mkdir(exist_ok=True)
            lines.append(
                f"{host} ansible_connection=local ansible_python_interpreter={sys.executable}"
                f" kube_bootstrap_rootfs={self.rootfs(host)}"
                f" kube_bootstrap_config_file={self.config_file(host)}"
            )
        (self.base / "inventory.ini").write_text("\n".join(lines) + "\n")
        (self.base / "site.yml").write_text(playbook)
        env = {
            **without_pip_settings(),
            "ANSIBLE_ROLES_PATH": str(ROLES),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_LOCAL_TEMP": str(self.base / "ansible-tmp"),
            "ANSIBLE_REMOTE_TEMP": str(self.base / "ansible-tmp"),
            "ANSIBLE_HOME": str(self.base / "ansible-home"),
        }
        proc = subprocess.run(
            [
                tool("ansible-playbook"),
                "-i",
                str(self.base / "inventory.ini"),
                str(self.base / "site.yml"),
                "-e",
                f"@{self.base / 'vars.json'}",
                *options,
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
            cwd=self.base,
        )
        return PlayRun(proc.returncode, proc.stdout + proc.stderr)


def without_pip_settings() -> dict[str, str]:
    """This environment minus pip's settings (variables and config files).

    A machine's pip configuration may add indexes or find-links directories; without it, the role's
    install can only use the sources its variables name.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIP_")}
    return {**env, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def environment_pins() -> list[str]:
    """``name==version`` of every distribution in this test environment except the project itself."""
    pins = set()
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and re.sub(r"[-_.]+", "-", name).lower() != "kube-bootstrap":
            pins.add(f"{name}=={dist.version}")
    return sorted(pins)


def install_vars(wheelhouse: Path) -> dict[str, Any]:
    """The role variables of an offline install: the project's wheel and its dependencies, nothing else."""
    (wheel,) = wheelhouse.glob("kube_bootstrap-*.whl")
    return {
        "kube_bootstrap_install_source": "wheel",
        "kube_bootstrap_package_path": str(wheel),
        # --no-compile: byte-compiling the Kubernetes client's thousands of modules is most of an
        # install's time; an import compiles what it loads.
        "kube_bootstrap_pip_extra_args": ["--no-index", "--find-links", str(wheelhouse), "--no-compile"],
        # The venv's base interpreter is this one's: the wheelhouse's compiled wheels fit it.
        "kube_bootstrap_python": sys.executable,
    }


def module_files(venv: Path, *modules: str) -> dict[str, Path]:
    """Where ``venv``'s Python imports each of ``modules`` from, run isolated and outside the source tree."""
    script = (
        "import importlib, json, sys\n"
        "print(json.dumps({name: importlib.import_module(name).__file__ for name in sys.argv[1:]}))"
    )
    proc = subprocess.run(
        # -I: neither PYTHONPATH, the user's site-packages nor the working directory can supply a module.
        [str(venv / "bin/python"), "-I", "-c", script, *modules],
        capture_output=True,
        text=True,
        cwd=venv,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return {name: Path(file) for name, file in json.loads(proc.stdout).items()}


def assert_self_contained(venv: Path) -> None:
    """``venv`` imports the CLI and the Kubernetes client from its own site-packages only."""
    config = (venv / "pyvenv.cfg").read_text()
    assert re.search(r"^include-system-site-packages\s*=\s*false\s*$", config, re.MULTILINE), config
    files = module_files(venv, *RUNTIME_IMPORTS)
    for name, file in files.items():
        assert file.resolve().is_relative_to(venv.resolve()), f"{name} comes from {file}, outside {venv}"


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path below ``root`` with its content (None for directories and sockets)."""
    return {
        str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))
    }


def make_site(base: Path, venv: Path, **variables: Any) -> Site:
    site = Site(base, venv, variables={**port_vars(allocate_ports()), **variables})
    site.rootfs().mkdir()
    return site


@pytest.fixture
def base() -> Iterator[Path]:
    """A short temporary directory: the planted CRI socket's path must fit in AF_UNIX's 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="kb-role-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return built_wheelhouse(tmp_path_factory)


def built_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel and a wheel of every dependency, at the versions this environment has.

    Built once per test run with ``pip wheel`` (pip's cache keeps it quick) and shared by the xdist
    workers (and by tests/test_ansible_ha.py); the dependencies come from the index this environment
    was installed from, never from an interpreter's site-packages.
    """

    def build(out: Path) -> None:
        constraints = out.parent / f"{out.name}-constraints.txt"
        constraints.write_text("\n".join(environment_pins()) + "\n")
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "-w", str(out), "-c", str(constraints), str(REPO)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

    return built_once(tmp_path_factory, "wheelhouse", build)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    return role_venv(tmp_path_factory, wheelhouse)


def role_venv(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Path:
    """A venv built by the role's install tasks alone: ``bootstrap`` is there at the wanted version.

    Built once per test run and shared by the xdist workers (and by tests/test_ansible_ha.py, whose
    nodes share this machine's filesystem outside their rootfs); the tests only run it.
    """

    def build(out: Path) -> None:
        site = Site(out, out / "venv", variables=install_vars(wheelhouse))
        run = site.play(playbook=INSTALL_PLAYBOOK)
        assert run.code == 0, run.output

    return built_once(tmp_path_factory, "role-venv", build) / "venv"


@dataclass
class Initialized:
    site: Site
    first: PlayRun
    planted: list[str]


@pytest.fixture(scope="module")
def initialized(wheelhouse: Path) -> Iterator[Initialized]:
    """The role run once on a fresh host: it installs from the wheelhouse into a new venv, then initializes.

    The kubelet stand-in keeps running the control plane until the module's tests are done.
    """
    base = Path(tempfile.mkdtemp(prefix="kb-role-"))
    site = make_site(base, base / "venv", **install_vars(wheelhouse))
    planted = plant_host_tools(site.rootfs())
    try:
        with kubelet_once_configured(site.rootfs()):
            first = site.play()
            yield Initialized(site, first, planted)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_first_run_installs_into_a_fresh_venv_initializes_and_reports_changed(
    initialized: Initialized,
) -> None:
    site, first = initialized.site, initialized.first
    assert first.code == 0, first.output
    assert first.recap()[NODE]["changed"] > 0
    assert "Install kube-bootstrap (wheel)" in first.output
    version = subprocess.run([str(site.venv / "bin/bootstrap"), "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"bootstrap, version {__version__}"
    for path in EXPECTED_FILES:
        assert (site.rootfs() / path).is_file(), path
    assert "kind: ClusterConfiguration" in site.config_file().read_text()
    assert site.config_file().stat().st_mode & 0o777 == 0o600
    assert_self_contained(site.venv)


def test_the_install_tasks_build_a_venv_that_imports_the_cli_and_client_from_itself(venv: Path) -> None:
    # The venv's base interpreter is this environment's (in CI a Python without these packages): each
    # must come from the venv's own site-packages, not from the base, the source tree or pip's settings.
    site_packages = venv.resolve() / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    site_packages /= "site-packages"
    files = module_files(venv, "bootstrap.cli.main", "kubernetes")
    assert files["bootstrap.cli.main"].resolve() == site_packages / "bootstrap" / "cli" / "main.py"
    assert files["kubernetes"].resolve() == site_packages / "kubernetes" / "__init__.py"
    assert_self_contained(venv)
    version = subprocess.run([str(venv / "bin/bootstrap"), "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == f"bootstrap, version {__version__}"


def test_second_run_changes_nothing_and_skips_the_install(initialized: Initialized) -> None:
    site = initialized.site
    assert initialized.first.code == 0, initialized.first.output
    before = snapshot(site.rootfs())
    second = site.play()
    assert second.code == 0, second.output
    assert second.recap()[NODE]["changed"] == 0, second.output
    assert re.search(
        r"TASK \[kube_bootstrap : Install kube-bootstrap \(wheel\)\] \*+\nskipping", second.output
    )
    after = snapshot(site.rootfs())
    assert {k: v for k, v in after.items() if "kube-bootstrap" not in k} == {
        k: v for k, v in before.items() if "kube-bootstrap" not in k
    }


def test_check_mode_on_the_initialized_node_reports_nothing_to_change(initialized: Initialized) -> None:
    site = initialized.site
    assert initialized.first.code == 0, initialized.first.output
    check = site.play("--check", "--diff")
    assert check.code == 0, check.output
    assert check.recap()[NODE]["changed"] == 0, check.output
    assert "+++ /etc/kubernetes/manifests" not in check.output


def test_the_cert_renewal_timer_variable_installs_the_units_once(initialized: Initialized) -> None:
    site = initialized.site
    assert initialized.first.code == 0, initialized.first.output
    units = site.rootfs() / "etc/systemd/system"
    names = [f"{UNIT_NAME}.service", f"{UNIT_NAME}.timer"]
    # The enabling link points at the timer's path inside the node (an absolute path), not the rootfs.
    link = units / "timers.target.wants" / f"{UNIT_NAME}.timer"
    assert not units.exists()
    # (check mode of the timer task: tests/test_cert_timer.py)
    first = site.play(kube_bootstrap_cert_renewal_timer=True)
    assert first.code == 0, first.output
    assert first.recap()[NODE]["changed"] == 1, first.output
    assert all((units / name).is_file() for name in names)
    assert os.readlink(link) == f"/etc/systemd/system/{UNIT_NAME}.timer"
    service = (units / f"{UNIT_NAME}.service").read_text()
    command = f"certs renew all --config {site.config_file()} --if-expiring-within 720h --restart -o json"
    assert command in service
    again = site.play(kube_bootstrap_cert_renewal_timer=True)
    assert again.code == 0, again.output
    assert again.recap()[NODE]["changed"] == 0, again.output


def test_check_mode_on_a_fresh_host_writes_nothing_reports_changed_and_shows_the_manifests(
    base: Path, venv: Path
) -> None:
    site = make_site(base, venv)
    plant_host_tools(site.rootfs())
    before = snapshot(site.rootfs())
    run = site.play("--check", "--diff")
    assert run.code == 0, run.output
    assert run.recap()[NODE]["changed"] > 0
    assert snapshot(site.rootfs()) == before
    assert not site.config_file().exists()
    assert "+++ /etc/kubernetes/manifests/kube-apiserver.yaml" in run.output
    assert (
        f"--secure-port={site.variables['kube_bootstrap_extra_args']['scheduler'][0]['value']}" in run.output
    )
    assert "Dry run:" not in run.output


def test_an_invalid_service_cidr_fails_naming_the_field_before_anything_is_written(
    base: Path, venv: Path
) -> None:
    site = make_site(base, venv)
    run = site.play(kube_bootstrap_service_cidr="10.96.0.0/8")
    assert run.code != 0
    assert run.recap()[NODE]["failed"] == 1
    assert "networking.serviceSubnet" in run.output and "10.96.0.0/8" in run.output
    assert list(site.rootfs().iterdir()) == []
    assert not site.config_file().parent.exists()


def test_an_unknown_encryption_algorithm_fails_argument_validation_naming_the_variable(
    base: Path, venv: Path
) -> None:
    site = make_site(base, venv)
    run = site.play(kube_bootstrap_encryption_algorithm="RSA-1024")
    assert run.code != 0
    assert "kube_bootstrap_encryption_algorithm" in run.output and "RSA-1024" in run.output
    assert "Validation of arguments failed" in run.output
    assert list(site.rootfs().iterdir()) == []
    assert not site.config_file().parent.exists()


def test_a_failing_init_fails_the_task_with_the_cli_error_message(base: Path, venv: Path) -> None:
    site = make_site(base, venv, kube_bootstrap_skip_phases=CLUSTER_PHASES)  # no kubelet, no CRI socket
    run = site.play()
    assert run.recap()[NODE]["failed"] == 1
    assert "bootstrap init failed (exit 4)" in run.output
    assert "FileExisting-kubelet" in run.output


def test_ignoring_all_preflight_errors_is_refused(base: Path, venv: Path) -> None:
    site = make_site(base, venv, kube_bootstrap_ignore_preflight_errors=["all"])
    run = site.play()
    assert run.recap()[NODE]["failed"] == 1
    assert "name the checks to ignore" in run.output
    assert list(site.rootfs().iterdir()) == []


def test_state_absent_on_the_last_control_plane_host_needs_a_yes_then_resets_keeping_foreign_files(
    base: Path, venv: Path
) -> None:
    # No kubelet binary and no CRI socket here: preflight runs, with those two errors ignored by name.
    site = make_site(
        base,
        venv,
        kube_bootstrap_skip_phases=CLUSTER_PHASES,
        kube_bootstrap_ignore_preflight_errors=["FileExisting-kubelet", "CRI"],
    )
    foreign = site.rootfs() / "etc/kubernetes/keep-me.txt"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("not ours\n")
    present = site.play()
    assert present.code == 0, present.output
    assert "FileExisting-kubelet" in present.output  # the CLI's warning, as an Ansible warning
    assert (site.rootfs() / "etc/kubernetes/pki/ca.key").exists()
    # The only control-plane host is the last one: resetting it ends the cluster, so it needs a yes.
    before = snapshot(site.rootfs())
    refused = site.play(kube_bootstrap_state="absent", kube_bootstrap_timeout="1s")
    assert refused.recap()[NODE]["failed"] == 1, refused.output
    assert "kube_bootstrap_allow_last_control_plane_reset: true" in refused.output
    assert snapshot(site.rootfs()) == before and site.config_file().exists()
    allowed = {"kube_bootstrap_allow_last_control_plane_reset": True}
    absent = site.play(kube_bootstrap_state="absent", kube_bootstrap_timeout="1s", **allowed)
    assert absent.code == 0, absent.output
    assert absent.recap()[NODE]["changed"] > 0
    remaining = sorted(str(p.relative_to(site.rootfs())) for p in site.rootfs().rglob("*"))
    assert remaining == ["etc", "etc/kubernetes", "etc/kubernetes/keep-me.txt"]
    assert not site.config_file().exists()
    again = site.play(kube_bootstrap_state="absent", kube_bootstrap_timeout="1s", **allowed)
    assert again.code == 0, again.output
    assert again.recap()[NODE]["changed"] == 0, again.output


def test_a_second_control_plane_host_without_an_endpoint_fails_early_naming_the_variable(
    base: Path, venv: Path
) -> None:
    # Several control-plane hosts need a common endpoint (joins discover the cluster there).
    site = make_site(base, venv)
    site.hosts = [NODE, "cp2"]
    run = site.play()
    recap = run.recap()
    assert recap[NODE]["failed"] == 1 and recap["cp2"]["failed"] == 1, run.output
    assert "kube_bootstrap_control_plane_endpoint is required" in run.output
    for host in (NODE, "cp2"):
        assert list(site.rootfs(host).iterdir()) == []
        assert not site.config_file(host).parent.exists()


def test_ansible_lint_passes_on_the_role_with_the_production_profile(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            tool("ansible-lint"),
            *("--offline", "--profile", "production"),
            *("roles/kube_bootstrap", "playbooks/site.yml"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO / "ansible",
        env={**os.environ, "ANSIBLE_HOME": str(tmp_path), "NO_COLOR": "1"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Profile 'production' was required, and it passed" in proc.stdout + proc.stderr


def test_the_module_result_carries_no_join_credentials() -> None:
    # show-join-command's details hold the token and certificate key (for `-o json` users who asked);
    # a task result is printed with -v and registered, so the module replaces them.
    path = Path(__file__).parent.parent / "ansible/roles/kube_bootstrap/library/kube_bootstrap_cli.py"
    spec = importlib.util.spec_from_file_location("kube_bootstrap_cli", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    token, key = "abcdef.0123456789abcdef", "ab" * 32
    details = {"token": token, "certificateKey": key, "caCertHashes": ["sha256:" + "0" * 64]}
    doc = {"ok": True, "phases": [{"path": "show-join-command", "details": details}, {"path": "certs"}]}
    redacted = module.redact_credentials(doc)
    assert token not in json.dumps(redacted) and key not in json.dumps(redacted)
    assert redacted["phases"][0]["details"]["caCertHashes"] == details["caCertHashes"]
    assert redacted["phases"][1] == {"path": "certs"}
    assert doc["phases"][0]["details"]["token"] == token  # the caller's document is not modified
