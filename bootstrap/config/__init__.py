"""Configuration: kubeadm ``v1beta4`` YAML + flags -> one typed, defaulted, validated :class:`Config`.

Public API::

    load_config(path, overrides, *, host=None) -> Config   # file + flags (flags win); raises ConfigError
    default_config(node_name=None, advertise_address=None, *, host=None) -> Config
    dump_config(cfg) -> str                               # YAML that load_config reads back identically
    parse_go_duration(text) -> timedelta / format_go_duration(td) -> str
    HostFacts                                             # injectable hostname / default-route detection

The names are resolved on first use: importing a light submodule (``bootstrap.config.durations``, which
the command line needs to check ``--timeout`` before anything else) must not import pydantic and build
the models, or an ``init`` could not start generating keys before the config is loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bootstrap.config.durations import format_go_duration, parse_go_duration
    from bootstrap.config.loader import (
        FLAG_FIELDS,
        default_config,
        dump_cluster_configuration,
        dump_config,
        load_config,
    )
    from bootstrap.config.model import (
        ACTED_FIELDS,
        WARNED_FIELDS,
        ClusterConfiguration,
        Config,
        InitConfiguration,
    )
    from bootstrap.config.netdefaults import HostFacts

_HOMES = {
    "format_go_duration": "durations",
    "parse_go_duration": "durations",
    "FLAG_FIELDS": "loader",
    "default_config": "loader",
    "dump_cluster_configuration": "loader",
    "dump_config": "loader",
    "load_config": "loader",
    "ACTED_FIELDS": "model",
    "WARNED_FIELDS": "model",
    "ClusterConfiguration": "model",
    "Config": "model",
    "InitConfiguration": "model",
    "HostFacts": "netdefaults",
}

__all__ = [
    "ACTED_FIELDS",
    "FLAG_FIELDS",
    "WARNED_FIELDS",
    "ClusterConfiguration",
    "Config",
    "HostFacts",
    "InitConfiguration",
    "default_config",
    "dump_cluster_configuration",
    "dump_config",
    "format_go_duration",
    "load_config",
    "parse_go_duration",
]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
