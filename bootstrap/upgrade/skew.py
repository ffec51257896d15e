"""Kubernetes' version-skew policy as it applies to a control-plane upgrade, each rule named.

The policy (kubernetes.io "Version Skew Policy"): the control plane moves one minor version at a
time and never back a minor; a kubelet is never newer than the API server and at most three minors
older. A patch release may move either way within a minor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bootstrap.errors import PreflightError

KUBELET_MAX_MINORS_OLDER = 3

RULE_SAME_MAJOR = "same major version"
RULE_NO_SKIP = "one minor version at a time"
RULE_NO_DOWNGRADE = "no minor-version downgrade"
RULE_KUBELET_NOT_NEWER = "a kubelet is never newer than the API server"
RULE_KUBELET_TOO_OLD = (
    f"a kubelet is at most {KUBELET_MAX_MINORS_OLDER} minor versions older than the API server"
)

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


class SkewRefused(PreflightError):
    """The version change is one the skew policy forbids (exit 4, as a failed preflight check)."""

    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        super().__init__(f"version skew: {message} (rule: {rule})")
        self.details = {"rule": rule}


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION.match(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a version (vX.Y.Z)")
        return cls(int(match[1]), int(match[2]), int(match[3]))

    def minor_text(self) -> str:
        return f"v{self.major}.{self.minor}"

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"


def check_upgrade(current: str, target: str, kubelets: dict[str, str] | None = None) -> list[str]:
    """Refuse (:class:`SkewRefused`) a change of the control plane from ``current`` to ``target`` that
    the policy forbids, given the kubelets' versions by node; return warnings for what it allows
    reluctantly (a patch downgrade)."""
    old, new = Version.parse(current), Version.parse(target)
    if new.major != old.major:
        raise SkewRefused(RULE_SAME_MAJOR, f"{old} → {new} changes the major version")
    if new.minor < old.minor:
        raise SkewRefused(RULE_NO_DOWNGRADE, f"{old} → {new} goes back from {old.minor_text()}")
    if new.minor > old.minor + 1:
        skipped = ", ".join(f"v{old.major}.{m}" for m in range(old.minor + 1, new.minor))
        raise SkewRefused(RULE_NO_SKIP, f"{old} → {new} skips {skipped}; upgrade to each in turn")
    for node, text in sorted((kubelets or {}).items()):
        try:
            kubelet = Version.parse(text)
        except ValueError:
            continue  # a kubelet that reports no usable version: nothing to hold it to
        if (kubelet.major, kubelet.minor) > (new.major, new.minor):
            raise SkewRefused(
                RULE_KUBELET_NOT_NEWER,
                f"the kubelet of node {node} is {kubelet}, newer than the control plane's {new}",
            )
        if kubelet.major == new.major and new.minor - kubelet.minor > KUBELET_MAX_MINORS_OLDER:
            raise SkewRefused(
                RULE_KUBELET_TOO_OLD,
                f"the kubelet of node {node} is {kubelet}, "
                f"{new.minor - kubelet.minor} minors older than {new}; upgrade it first",
            )
    if new < old:
        return [f"{old} → {new} is a patch downgrade; the policy allows it, but check the release notes"]
    return []
