"""OpenSSH servers in the nodes of a :class:`tests.netns.Topology`, and ``ansible-playbook`` driving them.

Each node's namespace runs its own ``sshd`` on the node's bridge address only, with a host key the test
made; the test also makes a throwaway client key pair and a ``known_hosts`` file listing every node's
host key, so the client verifies each host (``StrictHostKeyChecking=yes``, no global or user files).
``ansible-playbook`` runs in the switch namespace (the test's own vantage point on the bridge), so its
SSH connections go over the bridge; every node address is route-proven first. The sshd processes are
started through the topology, which kills them (and every session they forked) by pid on teardown.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.netns import Host, Process, Topology
from tests.tools import tool, wait_for

SSHD = "/usr/sbin/sshd"
SYSTEM_PYTHON = "/usr/bin/python3"
SSH_PORT = 22
PLAY_TIMEOUT = 300.0
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
# sshd gives a session a clean environment: this keeps the machine's pip settings (extra indexes or
# find-links directories) out of the role's offline install, as the local role tests do.
SESSION_ENV = "PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1"


def keygen(path: Path) -> str:
    """A new ed25519 key pair at ``path`` (and ``path``.pub); returns the public key line."""
    subprocess.run(
        [tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path.with_suffix(".pub").read_text().strip()


def sshd_config(address: str, host_key: Path, authorized_keys: Path) -> str:
    return (
        f"ListenAddress {address}:{SSH_PORT}\n"
        f"HostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized_keys}\n"
        "PidFile none\n"
        "PermitRootLogin prohibit-password\n"
        "PubkeyAuthentication yes\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        # The key files live in the test's temporary directory, not in a home directory.
        "StrictModes no\n"
        "PrintMotd no\n"
        "AcceptEnv none\n"
        f"SetEnv {SESSION_ENV}\n"
        # Several ansible forks open sessions at once.
        "MaxStartups 50\n"
        "MaxSessions 50\n"
        "Subsystem sftp internal-sftp\n"
    )


@dataclass
class PlayRun:
    """One finished ``ansible-playbook``: exit code, output, wall time."""

    code: int
    output: str
    seconds: float

    def recap(self) -> dict[str, dict[str, int]]:
        """Per host: ok, changed, unreachable, failed, as the PLAY RECAP says."""
        keys = ("ok", "changed", "unreachable", "failed")
        return {
            m[1]: dict(zip(keys, map(int, m.groups()[1:]), strict=True)) for m in RECAP.finditer(self.output)
        }

    def changed(self) -> dict[str, int]:
        return {host: counts["changed"] for host, counts in self.recap().items()}

    def task_result(self, host: str, task: str) -> dict[str, Any]:
        """The result ``ansible-playbook -v`` printed for ``task`` (its banner name) on ``host``."""
        decoder = json.JSONDecoder()
        current = ""
        for match in re.finditer(r"^TASK \[(.*)\] \*+$|^\w+: \[([^\]]+)\] => ", self.output, re.MULTILINE):
            if match[1] is not None:
                current = match[1]
            elif current == task and match[2] == host:
                found, _ = decoder.raw_decode(self.output, match.end())
                assert isinstance(found, dict)
                return found
        raise AssertionError(f"no result of task {task!r} on {host} in the output (was it run with -v?)")

    def task_output(self, task: str) -> str:
        """What the play printed under ``task``'s banner(s), for every host."""
        sections = re.split(r"^(TASK \[.*\] \*+)$", self.output, flags=re.MULTILINE)
        return "".join(
            body
            for banner, body in zip(sections[1::2], sections[2::2], strict=True)
            if banner[6:].startswith(task + "]")
        )

    def changed_tasks(self, host: str) -> list[str]:
        """The names of the tasks that reported ``changed`` on ``host`` (from the task banners)."""
        found, task = [], ""
        for line in self.output.splitlines():
            banner = re.match(r"^TASK \[(.*)\] \*+$", line)
            if banner:
                task = banner[1]
            elif re.match(rf"^changed: \[{re.escape(host)}\]", line):
                found.append(task)
        return found


@dataclass
class SshSite:
    """sshd in every node of ``hosts`` (name → namespace host), and the client side for Ansible."""

    topology: Topology
    base: Path
    hosts: Mapping[str, Host]
    servers: dict[str, Process] = field(default_factory=dict)

    @property
    def client_key(self) -> Path:
        return self.base / "ssh" / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.base / "ssh" / "known_hosts"

    def start(self) -> None:
        """Keys, known_hosts, one sshd per node; returns once every sshd accepts connections."""
        assert self.topology.switch is not None
        ssh = self.base / "ssh"
        ssh.mkdir(parents=True, exist_ok=True)
        authorized = ssh / "authorized_keys"
        authorized.write_text(keygen(self.client_key) + "\n")
        known = []
        # The privilege-separation directory sshd insists on (the package creates it at boot only).
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        for name, host in self.hosts.items():
            node_dir = ssh / name
            node_dir.mkdir(exist_ok=True)
            host_key = node_dir / "ssh_host_ed25519_key"
            public = keygen(host_key).split()
            known.append(f"{host.address} {public[0]} {public[1]}")
            config = node_dir / "sshd_config"
            config.write_text(sshd_config(host.address, host_key, authorized))
            tested = subprocess.run([SSHD, "-t", "-f", str(config)], capture_output=True, text=True)
            assert tested.returncode == 0, f"sshd refuses {config}: {tested.stderr}"
            self.servers[name] = self.topology.spawn(
                host, [SSHD, "-D", "-e", "-f", str(config)], log=node_dir / "sshd.log"
            )
        self.known_hosts.write_text("\n".join(known) + "\n")
        for name, host in self.hosts.items():
            self.topology.prove_route(self.topology.switch, host.address)
            wait_for(lambda h=host, n=name: self._accepts(n, h), 15, what=f"sshd on {name} ({host.address})")

    def _accepts(self, name: str, host: Host) -> bool:
        server = self.servers[name]
        if not server.alive():
            raise AssertionError(f"sshd on {name} exited:\n{server.log_tail()}")
        assert self.topology.switch is not None
        try:
            self.topology.connect(self.topology.switch, (host.address, SSH_PORT), timeout=1).close()
        except OSError:
            return False
        return True

    def ssh_args(self) -> str:
        """What every SSH connection Ansible makes uses: only the test's key, known_hosts and checks."""
        return " ".join(
            [
                "-F /dev/null",  # no user or system client config
                f"-o UserKnownHostsFile={self.known_hosts}",
                "-o GlobalKnownHostsFile=/dev/null",
                "-o StrictHostKeyChecking=yes",
                "-o IdentitiesOnly=yes",
                "-o BatchMode=yes",
                "-o ConnectTimeout=10",
            ]
        )

    def inventory(
        self,
        groups: Mapping[str, Sequence[str]],
        host_vars: Mapping[str, Mapping[str, Any]],
        common: Mapping[str, Any],
    ) -> dict[str, Any]:
        """A YAML (JSON) inventory: ``groups`` of node names, each node reached over SSH as root."""
        connection = {
            "ansible_connection": "ssh",
            "ansible_user": "root",
            "ansible_port": SSH_PORT,
            "ansible_ssh_private_key_file": str(self.client_key),
            "ansible_ssh_common_args": self.ssh_args(),
            # We log in as root: there is nothing to become (and no sudo on the nodes).
            "ansible_become": False,
            # The system's Python starts faster than a venv's with many packages (a module per task).
            "ansible_python_interpreter": SYSTEM_PYTHON if Path(SYSTEM_PYTHON).exists() else sys.executable,
            "ansible_remote_tmp": str(self.base / "remote-tmp"),
        }
        return {
            "all": {
                "vars": {**connection, **common},
                "children": {
                    group: {
                        "hosts": {
                            name: {"ansible_host": self.hosts[name].address, **host_vars.get(name, {})}
                            for name in names
                        }
                    }
                    for group, names in groups.items()
                },
            }
        }

    def play(
        self,
        playbook: Path,
        inventory: Mapping[str, Any],
        *options: str,
        roles: Path,
        timeout: float = PLAY_TIMEOUT,
    ) -> PlayRun:
        """``ansible-playbook`` in the switch namespace, connecting to the nodes over SSH."""
        assert self.topology.switch is not None
        path = self.base / "inventory.yml"
        path.write_text(json.dumps(inventory, indent=2))
        env = {key: value for key, value in os.environ.items() if not key.startswith(("PIP_", "ANSIBLE_"))}
        env.update(
            ANSIBLE_ROLES_PATH=str(roles),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_HOME=str(self.base / "ansible-home"),
            ANSIBLE_LOCAL_TEMP=str(self.base / "ansible-tmp"),
            ANSIBLE_PIPELINING="1",
            ANSIBLE_FORKS="10",
            ANSIBLE_HOST_KEY_CHECKING="1",
            ANSIBLE_RETRY_FILES_ENABLED="0",
            # The default control path under ANSIBLE_HOME is short enough for a Unix socket.
            ANSIBLE_SSH_CONTROL_PATH_DIR=str(self.base / "cp"),
        )
        started = time.monotonic()
        proc = self.topology.run(
            self.topology.switch,
            [tool("ansible-playbook"), "-i", str(path), str(playbook), *options],
            to=[host.address for host in self.hosts.values()],
            timeout=timeout,
            env=env,
        )
        return PlayRun(proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started)
