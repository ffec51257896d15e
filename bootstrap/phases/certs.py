"""Adapters from the ``certs`` phases to :mod:`bootstrap.pki`; one leaf per row of the cert table."""

from __future__ import annotations

from bootstrap import pki
from bootstrap.results import Outcome
from bootstrap.rundata import RunData
from bootstrap.workflow import Phase


def _etcd_external(rd: RunData) -> str | None:
    return "external etcd: etcd certificates are not needed" if rd.config.external_etcd else None


def _cert_phase(name: str) -> Phase:
    spec = pki.CERT_SPECS[name]

    def run(rd: RunData) -> list[Outcome]:
        return [pki.ensure_cert(name, rd.pki_settings, rd.cert_dir, rd.keys)]

    def keys_needed(rd: RunData) -> int:
        return 0 if (rd.cert_dir / spec.key_file).exists() else 1

    return Phase(
        name=name,
        help=spec.description,
        run=run,
        skip_if=_etcd_external if spec.etcd else None,
        keys_needed=keys_needed,
    )


def _sa(rd: RunData) -> list[Outcome]:
    return [pki.ensure_sa(rd.pki_settings, rd.cert_dir, rd.keys)]


def _sa_keys(rd: RunData) -> int:
    return 0 if (rd.cert_dir / "sa.key").exists() else 1


CERTS = Phase(
    name="certs",
    help="Certificate generation",
    children=(
        *(_cert_phase(name) for name in pki.CERT_NAMES),
        Phase("sa", "Generate a private key for signing service account tokens along with its public key",
              run=_sa, keys_needed=_sa_keys),
    ),
)
