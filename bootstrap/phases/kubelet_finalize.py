"""Adapter for the ``kubelet-finalize`` phase: point ``kubelet.conf`` at the kubelet's rotating client
certificate once the kubelet has written it (kubeadm#1819).

``kubeconfig/kubelet`` embeds a client certificate that expires with the others; the kubelet, with
``rotateCertificates``, keeps its current certificate and key in
``/var/lib/kubelet/pki/kubelet-client-current.pem`` and renews it there. Referencing that file (instead
of the embedded copy) lets the kubelet outlive the first certificate. Idempotent: a kubelet.conf that
already references the file is left alone; without the file (the kubelet has not started yet) nothing
changes and a warning says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bootstrap.host.kubelet import KUBELET_CONF
from bootstrap.pki.kubeconfig_files import KUBECONFIG_MODE
from bootstrap.results import Outcome
from bootstrap.workflow.tree import Phase

if TYPE_CHECKING:
    from bootstrap.workflow.rundata import RunData

CURRENT_CLIENT_PEM = "/var/lib/kubelet/pki/kubelet-client-current.pem"


def _current_user(kubeconfig: dict[str, Any]) -> dict[str, Any] | None:
    context_name = kubeconfig.get("current-context")
    contexts = kubeconfig.get("contexts") or []
    context = next((c.get("context") or {} for c in contexts if c.get("name") == context_name), None)
    if context is None:
        return None
    users = kubeconfig.get("users") or []
    entry = next((u for u in users if u.get("name") == context.get("user")), None)
    if entry is None or not isinstance(entry.get("user"), dict):
        return None
    user: dict[str, Any] = entry["user"]
    return user


def _holds_credentials(pem: bytes) -> bool:
    return b"-----BEGIN CERTIFICATE-----" in pem and b"PRIVATE KEY-----" in pem


def _enable_rotation(rd: RunData) -> list[Outcome]:
    import yaml

    from bootstrap.errors import PhaseError
    from bootstrap.host.fs import write_atomic

    path = rd.host_path(KUBELET_CONF)
    if not path.exists() and rd.dry_run:  # a skipped kubeconfig phase would have written it
        return [Outcome(False, f'No "{KUBELET_CONF}" to update yet (dry run)')]
    if not path.exists():
        raise PhaseError(
            f'{path}: no kubelet kubeconfig; run "bootstrap init phase kubeconfig kubelet" first'
        )
    try:
        kubeconfig = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PhaseError(f"{path}: cannot read the kubelet kubeconfig: {exc}") from None
    user = _current_user(kubeconfig) if isinstance(kubeconfig, dict) else None
    if user is None:
        raise PhaseError(f"{path}: its current context names no user")
    if user.get("client-certificate") == CURRENT_CLIENT_PEM and user.get("client-key") == CURRENT_CLIENT_PEM:
        return [Outcome(False, f'"{KUBELET_CONF}" already uses the rotating client certificate')]
    # The kubelet writes the file on the node; a dry run looks at the real one.
    pem = rd.real_fs.path(CURRENT_CLIENT_PEM)
    try:
        ready = _holds_credentials(pem.read_bytes())
    except OSError:
        ready = False
    if not ready:
        rd.reporter.warn(
            f"{CURRENT_CLIENT_PEM}: not written by the kubelet yet (or holds no certificate and key); "
            f"{KUBELET_CONF} keeps its embedded client certificate. Re-run "
            '"bootstrap init phase kubelet-finalize" once the kubelet runs'
        )
        return [Outcome(False, f'"{KUBELET_CONF}" left with its embedded client certificate')]
    for embedded in ("client-certificate-data", "client-key-data"):
        user.pop(embedded, None)
    user["client-certificate"] = CURRENT_CLIENT_PEM
    user["client-key"] = CURRENT_CLIENT_PEM
    write_atomic(path, yaml.safe_dump(kubeconfig, sort_keys=False).encode(), KUBECONFIG_MODE)
    shown = KUBELET_CONF if rd.dry_run else path
    return [
        Outcome(
            True, f'Updating "{shown}" to point to a rotatable kubelet client certificate and key', [path]
        )
    ]


KUBELET_FINALIZE = Phase(
    name="kubelet-finalize",
    help="Update the kubelet's settings once it has bootstrapped",
    children=(
        Phase(
            "enable-client-cert-rotation",
            "Point kubelet.conf at the kubelet's rotating client certificate",
            run=_enable_rotation,
        ),
    ),
)
