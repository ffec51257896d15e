#!/usr/bin/python
"""Validate a rendered kubeadm config with ``bootstrap config validate`` and keep it on the host.

One module call instead of a scratch directory, a template, a validate command, a directory check and a
second template: every task is a round trip to the host, and the role runs this on every host on every
run. ``state=validated`` only checks (nothing is written, also outside check mode), so that the role can
stop every host when one has an invalid config before any host writes; ``state=kept`` checks again and
writes the file when its content differs (atomically, mode 0600, its directory created 0700 when
missing). In check mode nothing is written and ``changed`` says whether a real run would write.
"""

from __future__ import annotations

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: kube_bootstrap_config
short_description: Validate a kubeadm config with the kube-bootstrap CLI and keep it
description:
  - Writes O(content) to a private temporary file, runs C(bootstrap config validate) on it and fails with
    the CLI's message (which names the field) when it is invalid.
  - With O(state=kept), writes O(content) to O(dest) when it differs (mode 0600, atomically).
options:
  executable: {description: Path of the bootstrap executable., type: path, required: true}
  content: {description: The rendered config., type: str, required: true}
  dest:
    {description: "Where the config is kept (required for O(state=kept); with O(state=validated), the
     result's C(differs) compares with it).", type: path}
  state:
    {description: Only validate, or validate and keep., type: str, choices: [validated, kept],
     default: validated}
  validate:
    {description: "Validate with O(state=kept) too (the role validated the same content one task
     before).", type: bool, default: true}
author: kube-bootstrap maintainers
"""


def validate(module, executable, content):
    """The CLI's verdict on ``content``; fails the module with its message when it is invalid."""
    fd, path = tempfile.mkstemp(prefix="kube-bootstrap-", suffix=".yaml")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        rc, _out, err = module.run_command([executable, "config", "validate", "--config", path])
    finally:
        os.unlink(path)
    if rc != 0:
        message = err.strip().replace(path, "<rendered config>")
        module.fail_json(
            msg="The config rendered from the kube_bootstrap_* variables is invalid (bootstrap config "
            f"validate, exit {rc}): {message}",
            rc=rc,
        )


def keep(dest, content):
    """Write ``content`` to ``dest``: a temp file with its final mode in the same directory, then rename."""
    directory = os.path.dirname(dest)
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    fd, temp = tempfile.mkstemp(prefix=".kubeadm-", dir=directory)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, dest)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def differs(dest, content):
    """Whether ``dest`` is missing, holds other content, or has another mode than 0600."""
    if not os.path.exists(dest):
        return True
    with open(dest) as handle:
        current = handle.read()
    return current != content or (os.stat(dest).st_mode & 0o777) != 0o600


def main():
    module = AnsibleModule(
        argument_spec={
            "executable": {"type": "path", "required": True},
            # The config may carry a bootstrap token (kube_bootstrap_config): never shown in a result.
            "content": {"type": "str", "required": True, "no_log": True},
            "dest": {"type": "path"},
            "state": {"type": "str", "choices": ["validated", "kept"], "default": "validated"},
            "validate": {"type": "bool", "default": True},
        },
        required_if=[("state", "kept", ["dest"])],
        supports_check_mode=True,
    )
    params = module.params
    if params["validate"] or params["state"] == "validated":
        validate(module, params["executable"], params["content"])
    dest = params["dest"]
    changed = dest is None or differs(dest, params["content"])
    if params["state"] == "validated":
        module.exit_json(changed=False, differs=changed)
    if changed and not module.check_mode:
        keep(dest, params["content"])
    module.exit_json(changed=changed, dest=dest)


if __name__ == "__main__":
    main()
