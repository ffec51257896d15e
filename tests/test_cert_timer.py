"""`bootstrap certs install-timer`: the renewal service and timer, checked by systemd-analyze verify."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

from bootstrap.host.cert_timer import UNIT_NAME, renew_command
from tests.tools import tool

UNITS = "etc/systemd/system"


def install(rootfs: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [tool("bootstrap"), "certs", "install-timer", "--rootfs", str(rootfs), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def verify(*units: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("systemd-analyze"), "verify", *map(str, units)], capture_output=True, text=True, timeout=60
    )


def unit_paths(rootfs: Path) -> tuple[Path, Path]:
    return rootfs / UNITS / f"{UNIT_NAME}.service", rootfs / UNITS / f"{UNIT_NAME}.timer"


def exec_start(service: Path) -> list[str]:
    line = next(line for line in service.read_text().splitlines() if line.startswith("ExecStart="))
    return shlex.split(line.removeprefix("ExecStart="))


def test_the_units_are_valid_for_systemd_and_run_the_renewal(tmp_path: Path) -> None:
    proc = install(tmp_path, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    service, timer = unit_paths(tmp_path)
    checked = verify(service, timer)
    assert checked.returncode == 0, checked.stderr
    assert checked.stderr == ""
    assert exec_start(service) == renew_command(tool("bootstrap"))
    assert exec_start(service)[1:] == [
        "certs", "renew", "all", "--if-expiring-within", "720h", "--restart", "-o", "json"
    ]  # fmt: skip
    text = timer.read_text()
    assert "OnCalendar=daily" in text and "RandomizedDelaySec=" in text and "Persistent=true" in text
    for path in (service, timer):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    link = tmp_path / UNITS / "timers.target.wants" / f"{UNIT_NAME}.timer"
    assert link.is_symlink() and str(link.readlink()) == f"/{UNITS}/{UNIT_NAME}.timer"
    doc = json.loads(proc.stdout)
    assert doc["changed"] is True and all(u["changed"] for u in doc["units"])


def test_a_second_install_changes_nothing(tmp_path: Path) -> None:
    assert install(tmp_path).returncode == 0
    service, timer = unit_paths(tmp_path)
    mtimes = [service.stat().st_mtime_ns, timer.stat().st_mtime_ns]
    proc = install(tmp_path, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["changed"] is False and not any(u["changed"] for u in doc["units"])
    assert [service.stat().st_mtime_ns, timer.stat().st_mtime_ns] == mtimes


def test_dry_run_prints_the_units_and_writes_nothing(tmp_path: Path) -> None:
    proc = install(tmp_path, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert f"# /etc/systemd/system/{UNIT_NAME}.service" in proc.stdout
    assert "OnCalendar=daily" in proc.stdout and "--if-expiring-within 720h --restart" in proc.stdout
    assert list(tmp_path.iterdir()) == []


def test_verify_fails_on_a_broken_unit(tmp_path: Path) -> None:
    # A renewal command that does not exist, then a timer with no valid schedule.
    assert install(tmp_path, "--executable", "/nonexistent/bootstrap").returncode == 0
    service, timer = unit_paths(tmp_path)
    broken = verify(service, timer)
    assert broken.returncode != 0 and "/nonexistent/bootstrap" in broken.stderr
    assert install(tmp_path, "--executable", tool("bootstrap")).returncode == 0
    assert verify(service, timer).returncode == 0
    timer.write_text(timer.read_text().replace("OnCalendar=daily", "OnCalendar=every day"))
    broken = verify(service, timer)
    assert broken.returncode != 0 and "calendar" in broken.stderr.lower()


def test_an_awkward_executable_path_and_the_config_are_quoted_for_systemd(tmp_path: Path) -> None:
    odd = tmp_path / "opt/kube bootstrap 100%/bin/bootstrap"
    odd.parent.mkdir(parents=True)
    odd.write_text("#!/bin/sh\n")
    odd.chmod(0o755)
    config = tmp_path / "my config.yaml"
    rootfs = tmp_path / "rootfs"
    proc = install(rootfs, "--executable", str(odd), "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    service, timer = unit_paths(rootfs)
    checked = verify(service, timer)
    assert checked.returncode == 0, checked.stderr  # systemd found the executable: the quoting held
    words = [w.replace("%%", "%") for w in exec_start(service)]
    assert words[0] == str(odd) and words[words.index("--config") + 1] == str(config)


def test_a_relative_executable_is_a_usage_error(tmp_path: Path) -> None:
    proc = install(tmp_path, "--executable", "bin/bootstrap")
    assert proc.returncode == 2 and "--executable" in proc.stderr
    assert list(tmp_path.iterdir()) == []


ROLES = Path(__file__).resolve().parent.parent / "ansible" / "roles"
TIMER_PLAYBOOK = """\
- name: The role's certificate renewal timer tasks
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Install the timer
      ansible.builtin.include_role:
        name: kube_bootstrap
        tasks_from: cert_timer
"""


def play_timer(base: Path, rootfs: Path, *options: str) -> tuple[int, str]:
    variables = {
        "kube_bootstrap__bin": tool("bootstrap"),
        "kube_bootstrap_config_file": "/etc/kube-bootstrap/kubeadm.yaml",
        "kube_bootstrap_rootfs": str(rootfs),
        "ansible_python_interpreter": sys.executable,
    }
    (base / "vars.json").write_text(json.dumps(variables))
    (base / "timer.yml").write_text(TIMER_PLAYBOOK)
    env = {
        **os.environ,
        "ANSIBLE_ROLES_PATH": str(ROLES),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(base / "ansible-tmp"),
        "ANSIBLE_HOME": str(base / "ansible-home"),
    }
    command = [tool("ansible-playbook"), "-i", "localhost,", "-c", "local", str(base / "timer.yml")]
    command += ["-e", f"@{base / 'vars.json'}", *options]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=180, cwd=base)
    return proc.returncode, proc.stdout + proc.stderr


def changed_count(output: str) -> int:
    recap = next(line for line in output.splitlines() if line.startswith("localhost"))
    return int(recap.split("changed=")[1].split()[0])


def test_the_role_installs_the_timer_idempotently_and_plans_it_in_check_mode(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    code, output = play_timer(tmp_path, rootfs, "--check")
    assert code == 0, output
    assert changed_count(output) == 1 and list(rootfs.iterdir()) == []
    code, output = play_timer(tmp_path, rootfs)
    assert code == 0, output
    assert changed_count(output) == 1
    service, timer = unit_paths(rootfs)
    assert verify(service, timer).returncode == 0
    words = exec_start(service)
    assert words[words.index("--config") + 1] == "/etc/kube-bootstrap/kubeadm.yaml"
    code, output = play_timer(tmp_path, rootfs)
    assert code == 0, output
    assert changed_count(output) == 0


def test_reset_removes_the_units_it_installed(tmp_path: Path) -> None:
    assert install(tmp_path).returncode == 0
    service, timer = unit_paths(tmp_path)
    link = tmp_path / UNITS / "timers.target.wants" / f"{UNIT_NAME}.timer"
    proc = subprocess.run(
        [tool("bootstrap"), "reset", "--force", "--rootfs", str(tmp_path), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    removed = json.loads(proc.stdout)["removed"]
    assert f"/{UNITS}/{UNIT_NAME}.service" in removed and f"/{UNITS}/{UNIT_NAME}.timer" in removed
    assert not service.exists() and not timer.exists() and not link.is_symlink()
