"""Load a v1beta4 JoinConfiguration (+ KubeletConfiguration) and join's flags into a :class:`JoinConfig`.

Same contract as :func:`bootstrap.config.loader.load_config`: flags win over the file, the file over the
defaults; every problem is collected into one :class:`~bootstrap.errors.ConfigError` whose lines read
``"<field.path>: <what is wrong>"`` (``"--flag (field.path): ..."`` when a flag set it); nothing is
written and no traffic is sent. Tokens and the certificate key are credentials: messages never quote them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bootstrap.config import validation
from bootstrap.config.hostport import is_ip
from bootstrap.config.join_model import JOIN_WARNED_FIELDS, JoinConfig, JoinConfiguration
from bootstrap.config.kubeadm_flags import JOIN_FLAG_FIELDS
from bootstrap.config.loader import (
    _KUBE_PROXY,
    _KUBELET,
    _fill_zero_values,
    _format,
    _get_by_alias,
    _leaf_paths,
    _loc_to_path,
    _nul_paths,
    _parse,
    _read_documents,
    default_node_registration,
    one_of_each_kind,
    q_gvk,
)
from bootstrap.config.model import FALLBACK_ADVERTISE_ADDRESS, KUBEADM_API_VERSION
from bootstrap.config.netdefaults import HostFacts
from bootstrap.config.tokens import TOKEN_RE
from bootstrap.errors import ConfigError

_JOIN = (KUBEADM_API_VERSION, "JoinConfiguration")
_IGNORED_KINDS = {
    "ClusterConfiguration": "join reads the cluster's settings from kube-system/kubeadm-config",
    "ResetConfiguration": "`join` does not use ResetConfiguration",
    "UpgradeConfiguration": "`join` does not use UpgradeConfiguration",
}
# kubeadm's public-key pin: "<format>:<hex>", sha256 the only format (the format name in any case).
_CA_CERT_HASH = re.compile(r"^sha256:[0-9a-fA-F]{64}$", re.IGNORECASE)
_SECRET_FIELDS = (
    "discovery.bootstrapToken.token",
    "discovery.tlsBootstrapToken",
    "controlPlane.certificateKey",
)
# Flags that only mean something for a control-plane join.
_CONTROL_PLANE_FLAGS = ("certificate-key", "apiserver-advertise-address", "apiserver-bind-port")


def load_join_config(
    path: Path | None,
    overrides: Mapping[str, object] | None = None,
    *,
    api_server_endpoint: str | None = None,
    host: HostFacts | None = None,
    discovery_from_flags: bool = False,
) -> JoinConfig:
    """Read ``path`` (or nothing when None), apply join's flag ``overrides``, default and validate.

    ``overrides`` maps join's kubeadm flag names (see ``JOIN_FLAG_FIELDS``) to values; None (and False
    for a switch, an empty list for a repeatable flag) means "not given". ``api_server_endpoint`` is
    join's positional argument (``discovery.bootstrapToken.apiServerEndpoint``).
    ``discovery_from_flags``: a file checked on its own may leave discovery to join's flags (what
    ``config validate`` allows for a kept JoinConfiguration). Raises
    :class:`ConfigError` listing every problem found.
    """
    host = host or HostFacts()
    source = str(path) if path is not None else "<flags>"
    problems: list[str] = []
    warnings: list[str] = []
    join_raw, kubelet = _split_documents(
        _read_documents(path) if path is not None else [], source, problems, warnings
    )
    if path is not None and join_raw is None and not problems:
        problems.append(f"{source}: no JoinConfiguration kind was found")
    raw = join_raw or {"apiVersion": KUBEADM_API_VERSION, "kind": "JoinConfiguration"}

    nul_fields = set(_nul_paths(raw))
    nul_fields.update(f"KubeletConfiguration.{where}" for where in _nul_paths(kubelet))
    problems += [f"{where}: contains a NUL character" for where in sorted(nul_fields)]

    flag_paths = _apply_overrides(overrides or {}, api_server_endpoint, raw, warnings)
    for where in _drop_unquotable_secrets(raw):
        nul_fields.add(where)  # reported here; the later rules would only repeat it
        problems.append(_format(where, "expected a string", flag_paths))
    join = _parse(JoinConfiguration, raw, flag_paths, problems)
    if join is None:
        # The fields of the wrong type are reported; the rules below still check everything else, so
        # one pass names every bad field.
        join, dropped = _without_bad_fields(raw)
        nul_fields.update(dropped)
    warnings += _warn_unacted(join)
    warnings += _apply_defaults(join, host)

    report = validation.Report()
    _validate(join, report, discovery_required=not discovery_from_flags)
    report.problems += validation.validate_kubelet(kubelet or {})
    problems += [
        _format(where, message, flag_paths)
        for where, message in report.problems
        if not any(where == n or where.startswith((f"{n}.", f"{n}[")) for n in nul_fields)
    ]
    if problems:
        raise ConfigError([validation.one_line(p) for p in problems])
    warnings = [validation.one_line(w) for w in [*warnings, *report.warnings]]
    return JoinConfig(join=join, kubelet=kubelet, warnings=warnings)


def _without_bad_fields(raw: dict[str, Any]) -> tuple[JoinConfiguration, set[str]]:
    """The JoinConfiguration of ``raw`` without the fields that fail to parse, and their paths."""
    import copy

    from pydantic import ValidationError

    from bootstrap.config import schema

    trimmed = copy.deepcopy(raw)
    dropped: set[str] = set()
    for _ in range(5):  # each pass removes every failing field; nested failures may need another
        try:
            return schema.validate(JoinConfiguration, trimmed), dropped
        except ValidationError as exc:
            for err in exc.errors():
                loc = list(err["loc"])
                dropped.add(_loc_to_path(loc))
                _drop(trimmed, loc)
    return JoinConfiguration(), dropped


def _drop(node: object, loc: list[int | str]) -> None:
    for key in loc[:-1]:
        in_dict = isinstance(node, dict) and key in node
        in_list = isinstance(node, list) and isinstance(key, int) and key < len(node)
        if not (in_dict or in_list):
            return
        node = node[key]  # type: ignore[index]
    last = loc[-1] if loc else None
    if isinstance(node, dict) and last in node:
        del node[last]
    elif isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = None


def _split_documents(
    docs: Sequence[object], source: str, problems: list[str], warnings: list[str]
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The JoinConfiguration and KubeletConfiguration documents; every other kind is refused or warned."""
    found: dict[str, dict[str, Any]] = {}
    init_seen: str | None = None
    kinds = (_JOIN, _KUBELET)
    for where, api_version, kind in one_of_each_kind(docs, source, problems, kinds, found):
        gvk = f"{api_version} {kind}"
        if api_version == KUBEADM_API_VERSION and kind == "InitConfiguration":
            init_seen = where
        elif api_version == KUBEADM_API_VERSION and kind in _IGNORED_KINDS:
            warnings.append(f"{where} ({gvk}): ignored; {_IGNORED_KINDS[kind]}")
        elif (api_version, kind) == _KUBE_PROXY:
            warnings.append(f"{where} ({gvk}): ignored; `join` does not configure kube-proxy")
        else:
            problems.append(
                f"{where}: unknown apiVersion/kind {q_gvk(api_version, kind)}; expected "
                f"{KUBEADM_API_VERSION} JoinConfiguration or KubeletConfiguration"
            )
    if init_seen is not None:
        # One file describes either a first control-plane node (init) or a joining node, never both.
        problems.append(
            f"{init_seen} ({KUBEADM_API_VERSION} InitConfiguration): a join config file must not hold an "
            "InitConfiguration; keep init's and join's documents in separate files"
        )
    return found.get(_JOIN[1]), found.get(_KUBELET[1])


def _drop_unquotable_secrets(raw: dict[str, Any]) -> list[str]:
    """Remove credentials of a non-string type (a YAML number, say) so no type error quotes them."""
    dropped: list[str] = []
    for dotted in _SECRET_FIELDS:
        *parents, leaf = dotted.split(".")
        node: object = raw
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node and not isinstance(node[leaf], str):
            del node[leaf]
            dropped.append(dotted)
    return dropped


def _set(node: dict[str, Any], dotted: str, value: object) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[leaf] = value


def _given(value: object) -> bool:
    if value is None or value is False:
        return False
    return not (isinstance(value, list | tuple) and not value)


def _apply_overrides(
    overrides: Mapping[str, object],
    api_server_endpoint: str | None,
    raw: dict[str, Any],
    warnings: list[str],
) -> dict[str, str]:
    """Write flag values into the raw JoinConfiguration; return field path -> flag name for messages."""
    for flag in overrides:
        if flag not in JOIN_FLAG_FIELDS:
            known = ", ".join(JOIN_FLAG_FIELDS)
            raise ValueError(f"load_join_config: unknown override {flag!r}; known: {known}")
    given = {flag: value for flag, value in overrides.items() if _given(value)}
    if not isinstance(raw.get("discovery"), dict):
        raw["discovery"] = {} if raw.get("discovery") is None else raw["discovery"]
    discovery = raw["discovery"]
    token_flags = given.keys() & {"token", "discovery-token"} or api_server_endpoint is not None
    # A discovery flag picks the discovery method, as on kubeadm's command line: the file's other one goes.
    if isinstance(discovery, dict):
        if "discovery-file" in given and not token_flags:
            discovery.pop("bootstrapToken", None)
        elif token_flags and "discovery-file" not in given:
            discovery.pop("file", None)
    typed = {flag: flag for flag in given}  # the flag a message names: the one the user typed
    if "token" in given:
        # --token stands for whichever of the two specific token flags is not given.
        for specific in ("discovery-token", "tls-bootstrap-token"):
            if specific not in given:
                given[specific], typed[specific] = given["token"], "token"
        del given["token"]
    if given.get("control-plane") is True:
        if not isinstance(raw.get("controlPlane"), dict):
            raw["controlPlane"] = {}
        del given["control-plane"]
    elif "control-plane" in given:
        raw["controlPlane"] = given.pop("control-plane")  # a library caller's odd value: the model refuses it
    flag_paths: dict[str, str] = {}
    for flag in _CONTROL_PLANE_FLAGS:
        if flag in given and raw.get("controlPlane") is None:
            warnings.append(f"--{flag}: ignored; it applies only to a control-plane join (--control-plane)")
            del given[flag]
    if api_server_endpoint is not None:
        _set(raw, "discovery.bootstrapToken.apiServerEndpoint", api_server_endpoint)
    for flag, value in given.items():
        dotted = JOIN_FLAG_FIELDS[flag]
        if flag == "apiserver-bind-port" and isinstance(value, str) and value.isascii() and value.isdigit():
            value = int(value)
        if flag == "discovery-token-ca-cert-hash":
            value = (
                [value]
                if isinstance(value, str)
                else list(value)
                if isinstance(value, list | tuple)
                else value
            )
        _set(raw, dotted, value)
        flag_paths[dotted] = typed[flag]
    return flag_paths


def _warn_unacted(join: JoinConfiguration) -> list[str]:
    out: list[str] = []
    for dotted, neutral in JOIN_WARNED_FIELDS:
        value = _get_by_alias(join, dotted)
        if any(value is n or value == n for n in neutral):
            continue
        out += [
            f"{leaf}: is set but kube-bootstrap does not act on it; ignored"
            for leaf in _leaf_paths(dotted, value)
        ]
    return out


def _apply_defaults(join: JoinConfiguration, host: HostFacts) -> list[str]:
    """Fill the host-dependent defaults and the TLS bootstrap token; return warnings about guesses."""
    warnings: list[str] = []
    _fill_zero_values(join)
    warnings += default_node_registration(join.node_registration, host)
    token = join.discovery.bootstrap_token
    if not join.discovery.tls_bootstrap_token and token is not None:
        join.discovery.tls_bootstrap_token = token.token
    if join.control_plane is not None:
        ep = join.control_plane.local_api_endpoint
        # As kubeadm: an unspecified address means "pick the default-route address".
        if not ep.advertise_address or ep.advertise_address in ("0.0.0.0", "::"):
            detected = host.default_ipv4()
            ep.advertise_address = detected or FALLBACK_ADVERTISE_ADDRESS
            if not detected:
                warnings.append(
                    "controlPlane.localAPIEndpoint.advertiseAddress: no IPv4 default route found; using "
                    f"{FALLBACK_ADVERTISE_ADDRESS} (set it, or pass --apiserver-advertise-address)"
                )
    return warnings


def _token_problem(value: str) -> str | None:
    """Why ``value`` is not a bootstrap token, without echoing its secret half."""
    if TOKEN_RE.fullmatch(value):
        return None
    shown = validation.q(value.split(".", 1)[0] + ".<redacted>") if "." in value else "the value"
    return f"{shown} does not match [a-z0-9]{{6}}.[a-z0-9]{{16}}"


def _validate(join: JoinConfiguration, r: validation.Report, *, discovery_required: bool) -> None:
    validation.validate_node_registration(join.node_registration, r)
    validation.validate_timeouts(join.timeouts, r)
    problem = validation.path_problem(join.ca_cert_path)
    if problem:
        r.error("caCertPath", problem)
    _validate_discovery(join, r, required=discovery_required)
    cp = join.control_plane
    if cp is not None:
        ep = cp.local_api_endpoint
        if not is_ip(ep.advertise_address):
            r.error(
                "controlPlane.localAPIEndpoint.advertiseAddress",
                f"{validation.q(ep.advertise_address)} is not a valid IP address",
            )
        if not 1 <= ep.bind_port <= 65535:
            r.error("controlPlane.localAPIEndpoint.bindPort", f"{ep.bind_port} is not a valid port (1-65535)")
        if cp.certificate_key and not validation.is_certificate_key(cp.certificate_key):
            r.error("controlPlane.certificateKey", "must be a hex-encoded 32-byte key (64 hex characters)")
    for i, phase in enumerate(join.skip_phases):
        if not phase or validation.has_control(phase):
            r.error(f"skipPhases[{i}]", f"{validation.q(phase)} is not a phase name")


def _validate_discovery(join: JoinConfiguration, r: validation.Report, *, required: bool) -> None:
    d = join.discovery
    if d.bootstrap_token is None and d.file is None and required:
        r.error(
            "discovery",
            "one of bootstrapToken or file must be set (--token/--discovery-token with the API server "
            "endpoint, or --discovery-file)",
        )
    elif d.bootstrap_token is not None and d.file is not None:
        r.error("discovery", "bootstrapToken and file are mutually exclusive; set only one")
    same = d.bootstrap_token is not None and d.tls_bootstrap_token == d.bootstrap_token.token
    if d.tls_bootstrap_token and not same:  # one token for both (--token): named once, below
        problem = _token_problem(d.tls_bootstrap_token)
        if problem:
            r.error("discovery.tlsBootstrapToken", problem)
    bt = d.bootstrap_token
    if bt is not None:
        problem = _token_problem(bt.token) if bt.token else "is required"
        if problem:
            r.error("discovery.bootstrapToken.token", problem)
        if not bt.api_server_endpoint:
            r.error("discovery.bootstrapToken.apiServerEndpoint", "is required (host:port of the API server)")
        else:
            problem = validation.host_port_problem(bt.api_server_endpoint, port_required=True)
            if problem:
                r.error("discovery.bootstrapToken.apiServerEndpoint", problem)
        for i, pin in enumerate(bt.ca_cert_hashes):
            if not _CA_CERT_HASH.fullmatch(pin):
                r.error(
                    f"discovery.bootstrapToken.caCertHashes[{i}]",
                    f"{validation.q(pin)} is not sha256:<64 hex characters> (sha256 is the only format)",
                )
        if not bt.ca_cert_hashes and not bt.unsafe_skip_ca_verification:
            r.error(
                "discovery.bootstrapToken.caCertHashes",
                "token discovery without a CA pin is unsafe; set caCertHashes "
                "(--discovery-token-ca-cert-hash) or unsafeSkipCAVerification "
                "(--discovery-token-unsafe-skip-ca-verification)",
            )
    if d.file is not None:
        _validate_discovery_file(d.file.kube_config_path, r)


def _validate_discovery_file(location: str, r: validation.Report) -> None:
    where = "discovery.file.kubeConfigPath"
    if not location:
        r.error(where, "is required (an absolute path or an https URL)")
    elif location.startswith("/"):
        problem = validation.path_problem(location)
        if problem:
            r.error(where, problem)
    elif "://" in location:
        problem = validation.url_problem(location, ("https",))
        if problem:
            r.error(where, problem)
    else:
        r.error(where, f"{validation.q(location)} is neither an absolute path nor an https URL")
