"""Adapters from the ``certs`` phases to :mod:`bootstrap.pki`; one leaf per row of the cert table.

The phase is all or nothing: when one of its steps fails, the files that the ``certs`` steps of this
run created are removed again, so a failed run never leaves, say, a new CA that signs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from bootstrap.pki.specs import CERT_NAMES, CERT_SPECS
from bootstrap.results import Outcome
from bootstrap.workflow.tree import Phase

if TYPE_CHECKING:
    from bootstrap.workflow.rundata import RunData

_HELP = {
    "ca": "Generate the self-signed Kubernetes CA to provision identities for other Kubernetes components",
    "apiserver": "Generate the certificate for serving the Kubernetes API",
    "apiserver-kubelet-client": "Generate the certificate for the API server to connect to kubelet",
    "front-proxy-ca": "Generate the self-signed CA to provision identities for front proxy",
    "front-proxy-client": "Generate the certificate for the front proxy client",
    "etcd-ca": "Generate the self-signed CA to provision identities for etcd",
    "etcd-server": "Generate the certificate for serving etcd",
    "etcd-peer": "Generate the certificate for etcd nodes to communicate with each other",
    "etcd-healthcheck-client": "Generate the certificate for liveness probes to healthcheck etcd",
    "apiserver-etcd-client": "Generate the certificate the apiserver uses to access etcd",
}


# What the certs steps of each run have created so far (paths and kinds, in order).
_CREATED: WeakKeyDictionary[RunData, list[tuple[Path, str]]] = WeakKeyDictionary()


def _all_or_nothing(rd: RunData, step: Callable[[], list[Outcome]]) -> list[Outcome]:
    """Run one certs step; if it fails, remove what this run's certs steps created, then re-raise."""
    from bootstrap.host.fs import capture, remove_created

    created = _CREATED.setdefault(rd, [])
    try:
        with capture(created):
            return step()
    except BaseException:
        removed = remove_created(created)
        created.clear()
        if removed:
            rd.reporter.warn(
                f"phase certs failed: removed the {len(removed)} path(s) it had created: "
                + ", ".join(str(p) for p in removed)
            )
        raise


def _etcd_external(rd: RunData) -> str | None:
    return "external etcd: etcd certificates are not needed" if rd.config.external_etcd else None


def _cert_phase(name: str) -> Phase:
    spec = CERT_SPECS[name]

    def run(rd: RunData) -> list[Outcome]:
        from bootstrap.pki import ensure_cert

        return _all_or_nothing(rd, lambda: [ensure_cert(name, rd.pki_settings, rd.cert_dir, rd.keys)])

    def keys_needed(rd: RunData) -> int:
        return 0 if (rd.cert_dir / spec.key_file).exists() else 1

    return Phase(
        name=name,
        help=_HELP[name],
        run=run,
        skip_if=_etcd_external if spec.etcd else None,
        keys_needed=keys_needed,
    )


def _sa(rd: RunData) -> list[Outcome]:
    from bootstrap.pki import ensure_sa

    return _all_or_nothing(rd, lambda: [ensure_sa(rd.pki_settings, rd.cert_dir, rd.keys)])


def _sa_keys(rd: RunData) -> int:
    return 0 if (rd.cert_dir / "sa.key").exists() else 1


CERTS = Phase(
    name="certs",
    help="Certificate generation",
    children=(
        *(_cert_phase(name) for name in CERT_NAMES),
        Phase(
            "sa",
            "Generate a private key for signing service account tokens along with its public key",
            run=_sa,
            keys_needed=_sa_keys,
        ),
    ),
)
