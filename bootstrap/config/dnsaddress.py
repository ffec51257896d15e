"""The cluster DNS Service's address: the 10th of the primary service CIDR, as kubeadm chooses it.

One rule for the two places that must agree: kubelet-start writes it into every kubelet's
``clusterDNS``, and ``addon/coredns`` gives it to the ``kube-dns`` Service. With a dual-stack
``serviceSubnet`` the first CIDR is the primary family, as for kubeadm.
"""

from __future__ import annotations

import ipaddress

DNS_ADDRESS_INDEX = 10


def dns_service_ip(service_subnet: str) -> str:
    """The 10th address of the primary (first) CIDR of ``service_subnet``; ValueError when that CIDR
    is too small to have one (config validation already refuses such a subnet)."""
    primary = service_subnet.split(",")[0].strip()
    network = ipaddress.ip_network(primary, strict=False)
    if network.num_addresses <= DNS_ADDRESS_INDEX:
        raise ValueError(
            f"networking.serviceSubnet: {primary} has {network.num_addresses} addresses; the DNS "
            f"Service needs its {DNS_ADDRESS_INDEX}th, so at least {DNS_ADDRESS_INDEX + 1}"
        )
    return str(network[DNS_ADDRESS_INDEX])
