"""Configuration: kubeadm ``v1beta4`` YAML + flags -> one typed, defaulted, validated :class:`Config`.

Public API::

    load_config(path, overrides, *, host=None) -> Config   # file + flags (flags win); raises ConfigError
    load_join_config(path, overrides, *, api_server_endpoint=None, host=None) -> JoinConfig
    default_config(node_name=None, advertise_address=None, *, host=None) -> Config
    dump_config(cfg) -> str                               # YAML that load_config reads back identically
    parse_go_duration(text) -> timedelta / format_go_duration(td) -> str
    HostFacts                                             # injectable hostname / default-route detection

Names are re-exported lazily: the CLI builds its options from :mod:`bootstrap.config.kubeadm_flags`
and the PKI reads :mod:`bootstrap.config.keyalgorithms`; neither may pull in pydantic at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bootstrap.config.durations import format_go_duration, parse_go_duration
    from bootstrap.config.join import load_join_config
    from bootstrap.config.join_model import JoinConfig, JoinConfiguration
    from bootstrap.config.kubeadm_flags import FLAG_FIELDS, JOIN_FLAG_FIELDS
    from bootstrap.config.loader import (
        default_config,
        dump_cluster_configuration,
        dump_config,
        load_config,
        load_config_text,
    )
    from bootstrap.config.model import (
        ACTED_FIELDS,
        WARNED_FIELDS,
        ClusterConfiguration,
        Config,
        InitConfiguration,
    )
    from bootstrap.config.netdefaults import HostFacts

_EXPORTS = {
    "format_go_duration": "durations",
    "parse_go_duration": "durations",
    "FLAG_FIELDS": "kubeadm_flags",
    "JOIN_FLAG_FIELDS": "kubeadm_flags",
    "load_join_config": "join",
    "load_config_text": "loader",
    "JoinConfig": "join_model",
    "JoinConfiguration": "join_model",
    **dict.fromkeys(("default_config", "dump_cluster_configuration", "dump_config", "load_config"), "loader"),
    **dict.fromkeys(
        ("ACTED_FIELDS", "WARNED_FIELDS", "ClusterConfiguration", "Config", "InitConfiguration"), "model"
    ),
    "HostFacts": "netdefaults",
}

__all__ = [
    "ACTED_FIELDS",
    "FLAG_FIELDS",
    "JOIN_FLAG_FIELDS",
    "WARNED_FIELDS",
    "ClusterConfiguration",
    "Config",
    "HostFacts",
    "InitConfiguration",
    "JoinConfig",
    "JoinConfiguration",
    "default_config",
    "dump_cluster_configuration",
    "dump_config",
    "format_go_duration",
    "load_config",
    "load_config_text",
    "load_join_config",
    "parse_go_duration",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"bootstrap.config.{module}"), name)
