"""What an upgrade (or reconfiguration) would change, per component and per certificate.

Compares the manifests on disk with the ones the wanted configuration renders (the same render path
as ``init``'s manifests phase), and the serving certificates' SANs with the ones it requires. Pure:
reads files, writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from bootstrap.components.write import text_diff
from bootstrap.upgrade import podfields
from bootstrap.upgrade.certsans import SanChange


@dataclass
class ComponentPlan:
    """One static pod: its manifest now and as rendered, and what differs between them."""

    component: str
    old_text: str | None
    new_text: str
    restart_for: list[str] = field(default_factory=list)  # certificates re-issued for it

    @cached_property
    def old(self) -> dict[str, Any]:
        return podfields.parse(self.old_text)

    @cached_property
    def new(self) -> dict[str, Any]:
        return podfields.parse(self.new_text)

    @property
    def changed(self) -> bool:
        return self.old_text != self.new_text or bool(self.restart_for)

    @property
    def old_image(self) -> str:
        return podfields.image(self.old)

    @property
    def new_image(self) -> str:
        return podfields.image(self.new)

    def flag_changes(self) -> list[str]:
        """``+--name=value``, ``---name=value`` and ``~--name: old → new``, sorted by name."""
        return _map_changes(podfields.flags(self.old), podfields.flags(self.new), "--", "=")

    def volume_changes(self) -> list[str]:
        return _map_changes(podfields.volumes(self.old), podfields.volumes(self.new), "", ": ")

    def probe_changes(self) -> list[str]:
        old, new = podfields.probes(self.old), podfields.probes(self.new)
        return [kind for kind in old if old[kind] != new[kind]]

    def summary(self) -> list[str]:
        """One line per kind of change, for people and for a failure's diagnosis."""
        lines = []
        if self.old_image != self.new_image:
            lines.append(f"image {self.old_image or '(none)'} → {self.new_image}")
        flag_changes = self.flag_changes()
        if flag_changes:
            lines.append(f"flags {', '.join(flag_changes)}")
        volume_changes = self.volume_changes()
        if volume_changes:
            lines.append(f"volumes {', '.join(volume_changes)}")
        probe_changes = self.probe_changes()
        if probe_changes:
            lines.append(f"probes {', '.join(probe_changes)} changed")
        lines += [f"restart for the re-issued {name} certificate" for name in self.restart_for]
        if not lines and self.changed:
            lines.append("other fields of the manifest changed (--diff shows them)")
        return lines

    def diff(self, label: str) -> str:
        return text_diff(self.old_text, self.new_text, label)

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "changed": self.changed,
            "from": {"image": self.old_image or None},
            "to": {"image": self.new_image},
            "flags": self.flag_changes(),
            "volumes": self.volume_changes(),
            "probes": self.probe_changes(),
            "restartFor": list(self.restart_for),
        }


def _map_changes(old: dict[str, str], new: dict[str, str], prefix: str, sep: str) -> list[str]:
    changes = []
    for name in sorted(set(old) | set(new)):
        if name not in old:
            changes.append(f"+{prefix}{name}{sep}{new[name]}")
        elif name not in new:
            changes.append(f"-{prefix}{name}{sep}{old[name]}")
        elif old[name] != new[name]:
            changes.append(f"~{prefix}{name}{sep}{old[name]} → {new[name]}")
    return changes


@dataclass
class UpgradePlan:
    """The whole plan: versions, the stored configuration's source, components and certificates."""

    current_version: str
    target_version: str
    stored_from: str
    components: list[ComponentPlan]
    certificates: list[SanChange]
    config_changed: bool  # the stored ClusterConfiguration differs from the wanted one
    warnings: list[str] = field(default_factory=list)

    @property
    def version_changes(self) -> bool:
        return self.current_version != self.target_version

    @property
    def changed_components(self) -> list[ComponentPlan]:
        return [c for c in self.components if c.changed]

    @property
    def noop(self) -> bool:
        return not self.changed_components and not self.certificates

    def text(self) -> str:
        lines = [
            f"Control plane: {self.current_version} → {self.target_version} "
            f"(stored configuration: {self.stored_from})"
        ]
        for plan in self.components:
            if not plan.changed:
                lines.append(f"  {plan.component}: unchanged")
                continue
            lines.append(f"  {plan.component}:")
            lines += [f"    {line}" for line in plan.summary()]
        for change in self.certificates:
            lines.append(f"  {change.text()} (restarts {change.component})")
        if self.noop:
            lines.append("Nothing to do: the control plane already runs this configuration.")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "currentVersion": self.current_version,
            "targetVersion": self.target_version,
            "storedConfiguration": self.stored_from,
            "components": [c.to_dict() for c in self.components],
            "certificates": [c.to_dict() for c in self.certificates],
        }
