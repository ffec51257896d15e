"""Inputs of the PKI package: one frozen value built by the caller from the validated configuration."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# kubeadm's CertificateBackdate: NotBefore is set this far in the past to tolerate clock skew.
CERT_BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class PkiSettings:
    """Everything the certificate table needs from the configuration, plus the run's start time."""

    node_name: str
    advertise_address: str
    control_plane_endpoint: str
    service_subnet: str
    dns_domain: str
    apiserver_cert_sans: tuple[str, ...]
    etcd_server_cert_sans: tuple[str, ...]
    etcd_peer_cert_sans: tuple[str, ...]
    external_etcd: bool
    encryption_algorithm: str
    cert_validity: timedelta
    ca_validity: timedelta
    now: datetime

    @property
    def not_before(self) -> datetime:
        """NotBefore of every certificate issued in this run (start time minus the backdate)."""
        return self.now - CERT_BACKDATE
