"""The bootstrap token's format and kubeadm's default token group.

Config facts: validation checks tokens and groups against them, and the cluster objects (the token
Secret, the RBAC bindings) are built from them.
"""

import re

# <token-id>.<token-secret>; the groups capture the two parts.
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
# The group a token gets unless the config names others; kubeadm's bootstrap RBAC bindings grant it.
TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"
TOKEN_GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
