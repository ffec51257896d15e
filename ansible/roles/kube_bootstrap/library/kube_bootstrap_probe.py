#!/usr/bin/python
"""Report which of the files init and join leave exist on the host: one read-only round trip.

The role decides from this what each host already is (part of the cluster, initialized by init); a
``stat`` task per file would cost a round trip each, on every host, on every run.
"""

from __future__ import annotations

import os

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: kube_bootstrap_probe
short_description: Which of the given files exist under a root directory
description:
  - Read-only; the same in check mode. C(exists) maps each of O(paths) to whether it exists (a dangling
    link counts as missing).
options:
  root: {description: The directory the paths are under (the node's rootfs, or C(/))., type: path, default: /}
  paths: {description: Paths relative to O(root)., type: list, elements: str, required: true}
author: kube-bootstrap maintainers
"""


def main():
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "default": "/"},
            "paths": {"type": "list", "elements": "str", "required": True},
        },
        supports_check_mode=True,
    )
    root = module.params["root"] or "/"
    exists = {path: os.path.exists(os.path.join(root, path.lstrip("/"))) for path in module.params["paths"]}
    module.exit_json(changed=False, exists=exists)


if __name__ == "__main__":
    main()
