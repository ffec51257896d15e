"""Configuration: kubeadm ``v1beta4`` YAML + flags -> one typed, defaulted, validated :class:`Config`.

Public API::

    load_config(path, overrides, *, host=None) -> Config   # file + flags (flags win); raises ConfigError
    default_config(node_name=None, advertise_address=None, *, host=None) -> Config
    dump_config(cfg) -> str                               # YAML that load_config reads back identically
    parse_go_duration(text) -> timedelta / format_go_duration(td) -> str
    HostFacts                                             # injectable hostname / default-route detection
"""

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
