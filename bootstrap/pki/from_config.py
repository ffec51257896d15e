"""Maps the loaded configuration onto the PKI settings, so :mod:`bootstrap.pki` stays config-agnostic."""

from __future__ import annotations

from datetime import datetime

from bootstrap.config import Config
from bootstrap.pki import PkiSettings


def pki_settings_from_config(cfg: Config, now: datetime) -> PkiSettings:
    cluster = cfg.cluster
    local = cluster.etcd.local
    return PkiSettings(
        node_name=cfg.node_name,
        advertise_address=cfg.advertise_address,
        control_plane_endpoint=cluster.control_plane_endpoint,
        service_subnet=cluster.networking.service_subnet,
        dns_domain=cluster.networking.dns_domain,
        apiserver_cert_sans=tuple(cluster.api_server.cert_sans),
        etcd_server_cert_sans=tuple(local.server_cert_sans) if local else (),
        etcd_peer_cert_sans=tuple(local.peer_cert_sans) if local else (),
        external_etcd=cfg.external_etcd,
        encryption_algorithm=cluster.encryption_algorithm,
        cert_validity=cluster.certificate_validity_period,
        ca_validity=cluster.ca_certificate_validity_period,
        now=now,
    )
