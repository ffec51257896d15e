"""Load kubeadm v1beta4 YAML + command-line flag overrides into a defaulted, validated :class:`Config`.

Order of precedence, highest first: **flags** (``overrides``), then the **file**, then the defaults
(``bootstrap.config.model`` constants and host detection from ``bootstrap.config.netdefaults``).
Loading has no side effects: nothing is written, no network traffic is sent.

Every problem found in the file and the flags is collected and raised together as one
:class:`~bootstrap.errors.ConfigError`; each problem reads ``"<field.path>: <what is wrong>"``, and a
problem caused by a flag reads ``"--flag (field.path): <what is wrong>"``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from bootstrap.config import validation
from bootstrap.config.defaults import construct
from bootstrap.config.kubeadm_flags import FLAG_FIELDS
from bootstrap.config.model import (
    DEFAULT_TOKEN_TTL,
    FALLBACK_ADVERTISE_ADDRESS,
    KUBEADM_API_VERSION,
    WARNED_FIELDS,
    BootstrapToken,
    ClusterConfiguration,
    Config,
    InitConfiguration,
    LocalEtcd,
    NodeRegistrationOptions,
    _Model,
    aliases,
    given_fields,
)
from bootstrap.config.netdefaults import HostFacts
from bootstrap.config.peek import MAX_CONFIG_BYTES
from bootstrap.config.proxyconfig import validate_kube_proxy
from bootstrap.config.versionlabels import resolve_label
from bootstrap.errors import ConfigError

_INIT = (KUBEADM_API_VERSION, "InitConfiguration")
_CLUSTER = (KUBEADM_API_VERSION, "ClusterConfiguration")
_KUBELET = ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration")
_KUBE_PROXY = ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration")
_IGNORED_KUBEADM_KINDS = ("JoinConfiguration", "ResetConfiguration", "UpgradeConfiguration")

_M = TypeVar("_M")

_YAML_TYPE_NAMES = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "list",
    dict: "mapping",
    type(None): "null",
}


def load_config(
    path: Path | None,
    overrides: Mapping[str, object] | None = None,
    *,
    host: HostFacts | None = None,
) -> Config:
    """Read ``path`` (or nothing when None), apply flag ``overrides``, default and validate.

    ``overrides`` maps kubeadm flag names (see :data:`FLAG_FIELDS`) to values; None values are
    ignored. Flags win over the file. ``host`` supplies the hostname / default-route address
    detection (tests pass fakes). Raises :class:`ConfigError` listing every problem found.
    """
    docs = _read_documents(path) if path is not None else []
    return _load(docs, str(path) if path is not None else None, overrides, host)


def load_config_text(
    text: str,
    source: str,
    overrides: Mapping[str, object] | None = None,
    *,
    host: HostFacts | None = None,
) -> Config:
    """As :func:`load_config`, from YAML ``text`` instead of a file; ``source`` names it in messages.

    A joining control-plane node builds its init-shaped configuration this way: the cluster's
    ClusterConfiguration with this node's own documents, checked by the same rules as init's."""
    from bootstrap.config.strict_yaml import YamlError, load_documents

    shown = validation.one_line(source)
    try:
        docs = load_documents(text, shown)
    except YamlError as exc:
        raise ConfigError(exc.problems) from None
    return _load(docs, shown, overrides, host)


def _load(
    docs: Sequence[object],
    named: str | None,
    overrides: Mapping[str, object] | None,
    host: HostFacts | None,
) -> Config:
    host = host or HostFacts()
    source = named if named is not None else "<defaults>"
    problems: list[str] = []
    warnings: list[str] = []
    found: dict[str, dict[str, Any]] = {}
    kinds = (_INIT, _CLUSTER, _KUBELET, _KUBE_PROXY)
    for where, api_version, kind in one_of_each_kind(docs, source, problems, kinds, found):
        gvk = f"{api_version} {kind}"
        if api_version == KUBEADM_API_VERSION and kind in _IGNORED_KUBEADM_KINDS:
            warnings.append(f"{where} ({gvk}): ignored; `init` does not use {kind}")
        else:
            problems.append(
                f"{where}: unknown apiVersion/kind {q_gvk(api_version, kind)}; "
                f"expected {KUBEADM_API_VERSION} "
                "InitConfiguration/ClusterConfiguration, KubeletConfiguration or KubeProxyConfiguration"
            )
    raw = {kind: doc for kind, doc in found.items() if (KUBEADM_API_VERSION, kind) in (_INIT, _CLUSTER)}
    kubelet, kube_proxy = found.get(_KUBELET[1]), found.get(_KUBE_PROXY[1])

    if named is not None and not raw and not problems:
        # As kubeadm: a file must say something about the cluster; an empty one is almost always a mistake.
        problems.append(f"{source}: no InitConfiguration or ClusterConfiguration kind was found")
    nul_fields: set[str] = set()
    for kind, document in (
        *raw.items(),
        ("KubeletConfiguration", kubelet),
        ("KubeProxyConfiguration", kube_proxy),
    ):
        prefix = "" if kind in raw else f"{kind}."
        nul_fields.update(f"{prefix}{where}" for where in _nul_paths(document))
    problems += [f"{where}: contains a NUL character" for where in sorted(nul_fields)]

    init_raw = raw.get("InitConfiguration", {"apiVersion": KUBEADM_API_VERSION, "kind": "InitConfiguration"})
    cluster_raw = raw.get(
        "ClusterConfiguration", {"apiVersion": KUBEADM_API_VERSION, "kind": "ClusterConfiguration"}
    )
    flag_paths = _apply_overrides(
        overrides or {}, {"InitConfiguration": init_raw, "ClusterConfiguration": cluster_raw}
    )

    # Without a file the documents hold only flag values: built directly when each is of its field's
    # type (pydantic would return the same objects), else parsed, so a bad value gets pydantic's check.
    init = construct(InitConfiguration, init_raw) if named is None else None
    cluster = construct(ClusterConfiguration, cluster_raw) if init is not None else None
    if init is None or cluster is None:
        # A document that fails to parse is replaced by the (valid) defaults so that the semantic rules
        # still run on the other one: the user sees every problem of the file in one go.
        init = _parse(InitConfiguration, init_raw, flag_paths, problems) or InitConfiguration()
        cluster = _parse(ClusterConfiguration, cluster_raw, flag_paths, problems) or ClusterConfiguration()

    warnings += _warn_unacted(init, cluster)
    warnings += _apply_defaults(init, cluster, host)

    report = validation.validate(init, cluster)
    report.problems += validation.validate_kubelet(kubelet or {})
    report.problems += validate_kube_proxy(kube_proxy or {})
    problems += [
        _format(path, message, flag_paths) for path, message in report.problems if path not in nul_fields
    ]
    if problems:
        raise ConfigError([validation.one_line(p) for p in problems])
    warnings += report.warnings
    warnings = [validation.one_line(w) for w in warnings]  # they may quote user keys and values
    return Config(init=init, cluster=cluster, kubelet=kubelet, kube_proxy=kube_proxy, warnings=warnings)


def default_config(
    node_name: str | None = None,
    advertise_address: str | None = None,
    *,
    host: HostFacts | None = None,
) -> Config:
    """A fully defaulted configuration (``bootstrap config print init-defaults``).

    The node name and advertise address are detected unless given.
    """
    return load_config(None, {"node-name": node_name, "advertise-address": advertise_address}, host=host)


_KEEP_EMPTY_LISTS = frozenset({"taints", "usages", "groups"})


def _prune(value: object, key: str = "") -> object:
    """Drop unset values (None, "", and empty lists whose default is empty) to keep the dump short."""
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for k, v in value.items():
            pruned = _prune(v, k)
            if pruned is None or pruned == "" or (pruned == [] and k not in _KEEP_EMPTY_LISTS):
                continue
            out[k] = pruned
        return out
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def dump_config(cfg: Config) -> str:
    """Multi-document YAML: InitConfiguration, ClusterConfiguration, then any kubelet/kube-proxy docs.

    camelCase keys, Go-form durations, v1beta4 list-form extraArgs. :func:`load_config` reads the
    output back into an identical configuration.
    """
    import yaml

    from bootstrap.config.schema import dump

    docs: list[object] = [_prune(dump(cfg.init)), _prune(dump(cfg.cluster))]
    docs += [d for d in (cfg.kubelet, cfg.kube_proxy) if d is not None]
    return yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, allow_unicode=True)


def dump_cluster_configuration(cfg: Config) -> str:
    """The ClusterConfiguration document alone (what ``kube-system/kubeadm-config`` holds)."""
    import yaml

    from bootstrap.config.schema import dump

    return yaml.safe_dump(_prune(dump(cfg.cluster)), sort_keys=False, default_flow_style=False)


def q_gvk(api_version: str, kind: str) -> str:
    """Quote an apiVersion/kind pair for messages."""
    return f'"{api_version}" "{kind}"'


def _read_documents(path: Path) -> list[object]:
    """The file's YAML documents; any problem (missing, unreadable, not text, bad YAML) is a ConfigError."""
    from bootstrap.config.strict_yaml import YamlError, load_documents

    shown = validation.one_line(str(path))
    try:
        with open(path, "rb") as stream:  # a directory fails here or at read() with EISDIR
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{shown}: cannot read the config file: {reason}") from None
    except ValueError:  # an embedded NUL in the path given by a library caller
        raise ConfigError(f"{shown}: cannot read the config file: the path contains a NUL byte") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{shown}: the config file is larger than {MAX_CONFIG_BYTES >> 20} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{shown}: the config file is not UTF-8 text (byte {exc.start})") from None
    try:
        return load_documents(text, shown)
    except YamlError as exc:
        raise ConfigError(exc.problems) from None


def _nul_paths(value: object, where: str = "") -> Iterator[str]:
    """Field paths whose key or string value holds a NUL: no path, name or argument may carry one."""
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and "\x00" in key:
                yield child
            else:
                yield from _nul_paths(item, child)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_paths(item, f"{where}[{index}]")
    elif isinstance(value, str) and "\x00" in value:
        yield where


def _apply_overrides(overrides: Mapping[str, object], docs: Mapping[str, dict[str, Any]]) -> dict[str, str]:
    """Write flag values into the raw documents; return field path -> flag name for error messages."""
    flag_paths: dict[str, str] = {}
    for flag, value in overrides.items():
        if flag not in FLAG_FIELDS:
            raise ValueError(f"load_config: unknown override {flag!r}; known: {', '.join(FLAG_FIELDS)}")
        if value is None:
            continue
        kind, dotted = FLAG_FIELDS[flag]
        if flag == "apiserver-bind-port" and isinstance(value, str) and value.isdigit():
            value = int(value)
        if flag == "apiserver-cert-extra-sans" and isinstance(value, str):
            value = [s.strip() for s in value.split(",") if s.strip()]
        elif flag == "apiserver-cert-extra-sans" and isinstance(value, Sequence):
            value = list(value)
        node = docs[kind]
        *parents, leaf = dotted.split(".")
        for key in parents:
            key, _, index = key.partition("[")
            if index:  # "bootstrapTokens[0]": that item of the list, made when missing
                items = node.get(key)
                if not isinstance(items, list) or not items:
                    items = node[key] = [{}]
                position = int(index.rstrip("]"))
                if not isinstance(items[position], dict):
                    items[position] = {}
                node = items[position]
                continue
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[leaf] = value
        flag_paths[dotted] = flag
    return flag_paths


def _format(path: str, message: str, flag_paths: Mapping[str, str]) -> str:
    for field_path, flag in flag_paths.items():
        if path == field_path or path.startswith((field_path + "[", field_path + ".")):
            return f"--{flag} ({path}): {message}"
    return f"{path}: {message}"


def typed_documents(
    docs: Sequence[object], source: str, problems: list[str]
) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """``(where, apiVersion, kind, document)`` for each document of a config file that names its type.

    Empty documents are skipped; one that is not a mapping, lacks a string apiVersion/kind or is
    kubeadm.k8s.io/v1beta3 is reported in ``problems`` (init's and join's files are read alike)."""
    for index, doc in enumerate(docs, start=1):
        where = f"{source}: document {index}"
        if doc is None:
            continue
        if not isinstance(doc, dict):
            problems.append(f"{where}: expected a mapping with apiVersion and kind, got a {_type_name(doc)}")
            continue
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        if not isinstance(api_version, str) or not isinstance(kind, str):
            problems.append(f"{where}: apiVersion and kind must both be set to strings")
            continue
        if api_version == "kubeadm.k8s.io/v1beta3":
            problems.append(
                f"{where} ({api_version} {kind}): kubeadm.k8s.io/v1beta3 is not supported; convert the "
                "file with `kubeadm config migrate --old-config <file> --new-config <new-file>` "
                f"to {KUBEADM_API_VERSION}"
            )
            continue
        yield where, api_version, kind, doc


def one_of_each_kind(
    docs: Sequence[object],
    source: str,
    problems: list[str],
    kinds: Collection[tuple[str, str]],
    found: dict[str, dict[str, Any]],
) -> Iterator[tuple[str, str, str]]:
    """Sort the typed documents by kind: the first of each ``(apiVersion, kind)`` in ``kinds`` goes into
    ``found`` (a copy, by kind); another of the same kind is a problem (at most one is allowed) and is
    dropped. Every document of another kind is yielded as ``(where, apiVersion, kind)``, in file order,
    for the caller to warn about or refuse, so the messages keep the documents' order. Init's and
    join's files follow this one rule."""
    for where, api_version, kind, doc in typed_documents(docs, source, problems):
        if (api_version, kind) not in kinds:
            yield where, api_version, kind
        elif kind in found:
            problems.append(f"{where} ({api_version} {kind}): a second {kind}; at most one is allowed")
        else:
            found[kind] = dict(doc)


def _type_name(value: object) -> str:
    return _YAML_TYPE_NAMES.get(type(value), type(value).__name__)


def _quote(value: object) -> str:
    if isinstance(value, str):
        return validation.q(value)
    if isinstance(value, dict | list):
        return _type_name(value)
    return repr(value) if not isinstance(value, bool) else str(value).lower()


def _pydantic_message(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    value = err.get("input")
    got = (
        f"got {_type_name(value)} {_quote(value)}"
        if not isinstance(value, dict | list)
        else (f"got a {_type_name(value)}")
    )
    expected = {
        "string_type": "a string",
        "int_type": "an integer",
        "bool_type": "true or false",
        "list_type": "a list",
        "dict_type": "a mapping",
        "model_type": "a mapping",
        "model_attributes_type": "a mapping",
    }
    if kind in ("dataclass_type", "dataclass_exact_type"):
        return f"expected a mapping, {got}"
    if kind in ("extra_forbidden", "unexpected_keyword_argument"):
        return "unknown field (not part of kubeadm v1beta4)"
    if kind in ("missing", "missing_argument", "missing_keyword_only_argument"):
        return "is required"
    if kind in expected:
        return f"expected {expected[kind]}, {got}"
    if kind == "literal_error":
        return f"{_quote(value)} is not allowed here (expected {err.get('ctx', {}).get('expected', '')})"
    if kind == "value_error":
        return str(err.get("ctx", {}).get("error", f"invalid value {_quote(value)}"))
    return f"invalid value {_quote(value)}"


def _loc_to_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _parse(
    model: type[_M], data: dict[str, Any], flag_paths: Mapping[str, str], problems: list[str]
) -> _M | None:
    from pydantic import ValidationError

    from bootstrap.config.schema import validate

    try:
        return validate(model, data)
    except ValidationError as exc:
        for err in exc.errors():
            problems.append(_format(_loc_to_path(err["loc"]), _pydantic_message(err), flag_paths))
        return None


def _get_by_alias(model: object, dotted: str) -> object:
    node: object = model
    for part in dotted.split("."):
        if not isinstance(node, _Model):
            return None
        name = next((n for n, key in aliases(type(node)).items() if key == part), part)
        node = getattr(node, name, None)
    return node


def _warn_unacted(init: InitConfiguration, cluster: ClusterConfiguration) -> list[str]:
    out: list[str] = []
    for kind, dotted, neutral in WARNED_FIELDS:
        model: _Model = init if kind == "InitConfiguration" else cluster
        value = _get_by_alias(model, dotted)
        if any(value is n or value == n for n in neutral):
            continue
        hint = ""
        if dotted == "apiServer.timeoutForControlPlane":
            hint = " (a v1beta3 field; use timeouts.controlPlaneComponentHealthCheck)"
        for leaf in _leaf_paths(dotted, value):
            out.append(f"{leaf}: is set but kube-bootstrap does not act on it; ignored{hint}")
    return out


def _leaf_paths(dotted: str, value: object) -> list[str]:
    """Name the sub-fields actually set (``dns.imageTag``, ``featureGates.X``), else the field itself."""
    leaves: list[str] = []
    if isinstance(value, _Model):
        keys = aliases(type(value))
        leaves = [f"{dotted}.{keys[name]}" for name in sorted(given_fields(value))]
    elif isinstance(value, dict):
        leaves = [f"{dotted}.{key}" for key in value]
    return leaves or [dotted]


def _fill_zero_values(model: _Model) -> None:
    """Treat Go zero values ("" and 0) as unset, as kubeadm does, for fields with a non-zero default."""
    for f in fields(model):
        value = getattr(model, f.name)
        if isinstance(value, _Model):
            _fill_zero_values(value)
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, _Model):
                    _fill_zero_values(item)
        elif value in ("", 0) and not isinstance(value, bool):
            default = f.default  # MISSING for a required field or one with a default factory
            if default not in ("", 0, None) and isinstance(default, type(value)):
                setattr(model, f.name, default)


def _resolve_version(version: str, warnings: list[str]) -> str:
    resolved, warning = resolve_label(version)
    if warning is not None:
        warnings.append(warning)
        return resolved
    return validation.normalise_version(version) or version


def default_node_registration(nr: NodeRegistrationOptions, host: HostFacts) -> list[str]:
    """Fill the node name from the host and give a bare CRI socket path its scheme (init and join)."""
    warnings: list[str] = []
    if not nr.name:
        nr.name = host.hostname().strip().lower()
    if nr.cri_socket.startswith("/"):
        warnings.append(
            f"nodeRegistration.criSocket: {validation.q(nr.cri_socket)} has no URL scheme; "
            f"using unix://{nr.cri_socket}"
        )
        nr.cri_socket = f"unix://{nr.cri_socket}"
    return warnings


def _apply_defaults(init: InitConfiguration, cluster: ClusterConfiguration, host: HostFacts) -> list[str]:
    """Fill host-dependent and structural defaults; return warnings about what was guessed."""
    warnings: list[str] = []
    _fill_zero_values(init)
    _fill_zero_values(cluster)
    cluster.kubernetes_version = _resolve_version(cluster.kubernetes_version, warnings)

    warnings += default_node_registration(init.node_registration, host)

    ep = init.local_api_endpoint
    # As kubeadm: an unspecified address (0.0.0.0, ::) means "pick the default-route address".
    if not ep.advertise_address or ep.advertise_address in ("0.0.0.0", "::"):
        detected = host.default_ipv4()
        if detected:
            ep.advertise_address = detected
        else:
            ep.advertise_address = FALLBACK_ADVERTISE_ADDRESS
            warnings.append(
                "localAPIEndpoint.advertiseAddress: no IPv4 default route found; using "
                f"{FALLBACK_ADVERTISE_ADDRESS} (set it, or pass --apiserver-advertise-address, "
                "for a reachable cluster)"
            )

    if not init.bootstrap_tokens:
        init.bootstrap_tokens = [BootstrapToken()]
    for token in init.bootstrap_tokens:
        if token.ttl is None and token.expires is None:
            token.ttl = DEFAULT_TOKEN_TTL

    if cluster.etcd.local is None and cluster.etcd.external is None:
        cluster.etcd.local = LocalEtcd()
    return warnings
