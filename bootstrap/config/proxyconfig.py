"""Checks a ``KubeProxyConfiguration`` (kubeproxy.config.k8s.io/v1alpha1) document from ``--config``.

The document goes, merged over kubeadm's settings, into the kube-proxy ConfigMap, so a mistake would
only show when kube-proxy crash-loops on every node. Each field is checked against the type
kube-proxy gives it (Kubernetes v1.31 to v1.35); an unknown field and a wrong type are named, and
``mode``, ``detectLocalMode``, ``clusterCIDR`` and ``bindAddress`` are checked for their values.
``logging``, ``linux`` and ``windows`` are taken as they are. ``null`` leaves a field unset.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from bootstrap.config.durations import parse_go_duration
from bootstrap.config.hostport import is_ip

PREFIX = "KubeProxyConfiguration"
MODES = ("", "iptables", "ipvs", "nftables", "kernelspace")
DETECT_LOCAL_MODES = ("", "ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix")

# Leaf types: "string", "bool", "int", "number", "duration", "strings" (a list of strings),
# "gates" (feature name -> bool), "any" (kept as given); a mapping is a nested section.
Schema = Mapping[str, Any]
_SYNC = {"syncPeriod": "duration", "minSyncPeriod": "duration"}
_CONNTRACK = {
    "maxPerCore": "int",
    "min": "int",
    "tcpEstablishedTimeout": "duration",
    "tcpCloseWaitTimeout": "duration",
    "tcpBeLiberal": "bool",
    "udpTimeout": "duration",
    "udpStreamTimeout": "duration",
}
FIELDS: Schema = {
    "apiVersion": "string",
    "kind": "string",
    "featureGates": "gates",
    "clientConnection": {
        "kubeconfig": "string",
        "acceptContentTypes": "string",
        "contentType": "string",
        "qps": "number",
        "burst": "int",
    },
    "logging": "any",
    "hostnameOverride": "string",
    "bindAddress": "string",
    "healthzBindAddress": "string",
    "metricsBindAddress": "string",
    "bindAddressHardFail": "bool",
    "enableProfiling": "bool",
    "showHiddenMetricsForVersion": "string",
    "mode": "string",
    "iptables": {"masqueradeBit": "int", "masqueradeAll": "bool", "localhostNodePorts": "bool", **_SYNC},
    "ipvs": {
        **_SYNC,
        "scheduler": "string",
        "excludeCIDRs": "strings",
        "strictARP": "bool",
        "tcpTimeout": "duration",
        "tcpFinTimeout": "duration",
        "udpTimeout": "duration",
    },
    "nftables": {"masqueradeBit": "int", "masqueradeAll": "bool", **_SYNC},
    "winkernel": {
        "networkName": "string",
        "sourceVip": "string",
        "enableDSR": "bool",
        "rootHnsEndpointName": "string",
        "forwardHealthCheckVip": "bool",
    },
    "detectLocalMode": "string",
    "detectLocal": {"bridgeInterface": "string", "interfaceNamePrefix": "string"},
    "clusterCIDR": "string",
    "nodePortAddresses": "strings",
    "oomScoreAdj": "int",
    "conntrack": _CONNTRACK,
    "configSyncPeriod": "duration",
    "portRange": "string",
    "windowsRunAsService": "bool",
    **_SYNC,
    "linux": "any",
    "windows": "any",
}

_EXPECTED = {
    "string": "a string",
    "bool": "true or false",
    "int": "an integer",
    "number": "a number",
    "duration": "a duration such as 30s or 1m0s",
    "strings": "a list of strings",
    "gates": "a mapping of feature names to true or false",
}


def _shown(value: object) -> str:
    from bootstrap.config.validation import q

    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    return "true" if value is True else "false" if value is False else q(value)


def _type_ok(kind: str, value: object) -> bool:
    if kind == "any":
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "strings":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "gates":
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, bool) for k, v in value.items()
        )
    if kind == "duration":
        if not isinstance(value, str):
            return False
        try:
            parse_go_duration(value)
        except ValueError:
            return False
        return True
    raise AssertionError(f"unknown field type {kind}")


def _walk(doc: Mapping[str, Any], schema: Schema, where: str, problems: list[tuple[str, str]]) -> None:
    for key, value in doc.items():
        path = f"{where}.{key}"
        kind = schema.get(str(key))
        if kind is None:
            problems.append((path, "unknown field (not part of kubeproxy.config.k8s.io/v1alpha1)"))
        elif value is None:
            continue
        elif isinstance(kind, Mapping):
            if isinstance(value, dict):
                _walk(value, kind, path, problems)
            else:
                problems.append((path, f"expected a mapping, got {_shown(value)}"))
        elif not _type_ok(kind, value):
            problems.append((path, f"expected {_EXPECTED[kind]}, got {_shown(value)}"))


def validate_kube_proxy(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every problem of the document, as ``(field path, message)``; empty when it is usable."""
    problems: list[tuple[str, str]] = []
    _walk(doc, FIELDS, PREFIX, problems)
    if problems:
        return problems
    mode = doc.get("mode")
    if isinstance(mode, str) and mode not in MODES:
        problems.append(
            (f"{PREFIX}.mode", f"{_shown(mode)} is not one of {', '.join(repr(m) for m in MODES)}")
        )
    detect = doc.get("detectLocalMode")
    if isinstance(detect, str) and detect not in DETECT_LOCAL_MODES:
        allowed = ", ".join(m for m in DETECT_LOCAL_MODES if m)
        problems.append((f"{PREFIX}.detectLocalMode", f"{_shown(detect)} is not one of {allowed}"))
    cidrs = doc.get("clusterCIDR")
    if isinstance(cidrs, str) and cidrs:
        from bootstrap.config.validation import parse_cidrs

        try:
            parse_cidrs(cidrs)
        except ValueError as exc:
            problems.append((f"{PREFIX}.clusterCIDR", str(exc)))
    bind = doc.get("bindAddress")
    if isinstance(bind, str) and bind and not is_ip(bind):
        problems.append((f"{PREFIX}.bindAddress", f"{_shown(bind)} is not an IP address"))
    for index, cidr in enumerate(doc.get("nodePortAddresses") or []):
        if cidr == "primary":
            continue
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            problems.append((f"{PREFIX}.nodePortAddresses[{index}]", f"{_shown(cidr)} is not a CIDR"))
    return problems
