"""Adapter for the ``addon`` phase: ``coredns`` and ``kube-proxy``, applied through ``rd.applier``.

Create or update, as the other post-init phases; a re-run reports every object unchanged. One
exception: a Corefile someone edited in the cluster is kept, with a warning and the difference in the
JSON details, unless ``--force-addons``. kubeadm keeps an existing CoreDNS ConfigMap on upgrade too,
but overwrites it silently at init; here neither run loses an edit without saying so.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from bootstrap.results import Outcome
from bootstrap.workflow.tree import Phase

if TYPE_CHECKING:
    from bootstrap.workflow.rundata import RunData


def _dns_disabled(rd: RunData) -> str | None:
    from bootstrap.components.images import dns_enabled

    return None if dns_enabled(rd.config) else "disabled in the config (dns.disabled)"


def _proxy_disabled(rd: RunData) -> str | None:
    from bootstrap.components.images import proxy_enabled

    return None if proxy_enabled(rd.config) else "disabled in the config (proxy.disabled)"


def _coredns(rd: RunData) -> list[Outcome]:
    from bootstrap.addons import coredns
    from bootstrap.errors import PhaseError

    try:
        objects = coredns.coredns_objects(rd.config)
    except ValueError as exc:
        raise PhaseError(str(exc)) from None
    return [
        _apply_corefile(rd, obj) if obj["kind"] == "ConfigMap" else rd.applier.apply(obj) for obj in objects
    ]


def _apply_corefile(rd: RunData, obj: dict[str, Any]) -> Outcome:
    """Apply the coredns ConfigMap, unless its live Corefile was edited (then keep it and say so, or
    with --force-addons replace it and say so)."""
    from bootstrap.addons import coredns

    live = rd.applier.read("ConfigMap", coredns.NAMESPACE, coredns.CONFIG_MAP)
    wanted = obj["data"][coredns.COREFILE_KEY]
    edited = coredns.corefile_drift(live, wanted)
    if edited is None:
        return rd.applier.apply(obj)
    where = f"{coredns.NAMESPACE}/{coredns.CONFIG_MAP}"
    diff = difflib.unified_diff(
        edited.splitlines(), wanted.splitlines(), "live Corefile", "rendered Corefile", lineterm=""
    )
    forced = rd.options.force_addons
    details = {"corefileDrift": {"configMap": where, "kept": not forced, "diff": list(diff)}}
    if forced:
        rd.reporter.warn(f"ConfigMap {where}: replacing the Corefile edited in the cluster (--force-addons)")
        applied = rd.applier.apply(obj)
        return Outcome(applied.changed, f"{applied.message} (edited Corefile replaced)", [], details)
    rd.reporter.warn(
        f"ConfigMap {where}: its Corefile was changed in the cluster and differs from the one rendered "
        "from the config; kept (run with --force-addons to replace it)"
    )
    return Outcome(False, f"Kept the edited Corefile in ConfigMap {where} (drift reported)", [], details)


def _kube_proxy(rd: RunData) -> list[Outcome]:
    from bootstrap.addons import kube_proxy

    config = kube_proxy.proxy_config(rd.config)
    for warning in config.warnings:
        rd.reporter.warn(warning)
    return [rd.applier.apply(obj) for obj in kube_proxy.kube_proxy_objects(rd.config, config)]


ADDON = Phase(
    name="addon",
    help="Install the cluster addons: cluster DNS and the Service proxy",
    children=(
        Phase(
            "coredns",
            "CoreDNS: its Deployment, Corefile and the kube-dns Service",
            run=_coredns,
            skip_if=_dns_disabled,
        ),
        Phase(
            "kube-proxy",
            "kube-proxy: its DaemonSet, configuration and RBAC",
            run=_kube_proxy,
            skip_if=_proxy_disabled,
        ),
    ),
)
