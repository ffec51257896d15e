"""A run without a config file builds its documents without pydantic (``config/defaults.py``): the result
must be exactly what the pydantic path gives, for every combination of flags, valid or not.

Each case is loaded twice, once as the CLI does and once with the direct construction switched off
(every document parsed by pydantic), and the two outcomes compared: the same :class:`Config` (and the
same dump), or the same error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bootstrap.config import Config, dump_config, load_config
from bootstrap.config import loader as loader_module
from bootstrap.config.defaults import construct
from bootstrap.config.kubeadm_flags import KUBEADM_FLAGS
from bootstrap.config.model import (
    APIServer,
    BootstrapToken,
    ClusterConfiguration,
    InitConfiguration,
    Timeouts,
    aliases,
    given_fields,
)
from bootstrap.config.netdefaults import HostFacts
from bootstrap.config.schema import validate
from bootstrap.errors import ConfigError

HOST = HostFacts(hostname=lambda: "CP-Node1", default_ipv4=lambda: "192.0.2.10")
NO_ROUTE = HostFacts(hostname=lambda: "cp1", default_ipv4=lambda: None)

# Values a flag may carry: what click passes (strings, the port as int), library callers' other types,
# and both valid and invalid text for every field.
TEXT = st.sampled_from(
    [
        "",
        "cp1",
        "CP-1",
        "10.0.0.1",
        "::1",
        "0.0.0.0",
        "10.244.0.0/16",
        "10.96.0.0/12,fd00::/108",
        "example.com:6443",
        "v1.33.1",
        "stable",
        "1.99.0",
        "registry.example.com/k8s",
        "/etc/kubernetes/pki",
        "relative/dir",
        "unix:///run/containerd/containerd.sock",
        "/run/crio/crio.sock",
        "abcdef.0123456789abcdef",
        "not-a-token",
        "0" * 64,
        "2h",
        "0",
        "0s",
        "-1h",
        "bogus",
        "9999999999h",
        "a,b, c",
        "bad host!",
        "x" * 300,
        "ünïcode",
    ]
)
VALUE = st.one_of(
    st.none(),
    TEXT,
    st.integers(min_value=-1, max_value=70000),
    st.booleans(),
    st.lists(TEXT, max_size=3),
    st.sampled_from([1.5, {"a": "b"}, timedelta(hours=1)]),
)
FLAG_NAMES = [name for flag in KUBEADM_FLAGS for name in flag.names]
OVERRIDES = st.dictionaries(st.sampled_from(FLAG_NAMES), VALUE, max_size=6)


def load(overrides: dict[str, object], host: HostFacts, *, direct: bool) -> Config | ConfigError:
    """``load_config(None, overrides)``; with ``direct`` off every document goes through pydantic."""
    real = loader_module.construct
    if not direct:
        loader_module.construct = lambda model, data: None  # type: ignore[assignment]
    try:
        return load_config(None, overrides, host=host)
    except ConfigError as exc:
        return exc
    finally:
        loader_module.construct = real


def assert_same(direct: Config | ConfigError, parsed: Config | ConfigError) -> None:
    if isinstance(parsed, ConfigError):
        assert isinstance(direct, ConfigError), f"direct path accepted what pydantic refused: {parsed}"
        assert str(direct) == str(parsed)
        return
    assert isinstance(direct, Config), f"direct path refused what pydantic accepted: {direct}"
    assert direct == parsed
    assert dump_config(direct) == dump_config(parsed)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(overrides=OVERRIDES, host=st.sampled_from([HOST, NO_ROUTE]))
@example(overrides={"apiserver-bind-port": True, "node-name": "cp1"}, host=HOST)
@example(overrides={"token-ttl": timedelta(hours=1), "apiserver-cert-extra-sans": ["a", "b"]}, host=HOST)
@example(overrides={"token-ttl": "0", "service-cidr": 5, "certificate-key": None}, host=NO_ROUTE)
def test_any_flags_give_the_config_the_pydantic_path_gives(
    overrides: dict[str, object], host: HostFacts
) -> None:
    assert_same(load(overrides, host, direct=True), load(overrides, host, direct=False))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"node-name": "cp1", "advertise-address": "10.0.0.1"},
        {"apiserver-bind-port": 7443, "service-cidr": "10.100.0.0/16", "pod-network-cidr": "10.244.0.0/16"},
        {"apiserver-bind-port": "7443", "apiserver-cert-extra-sans": "a.example, 10.1.1.1"},
        {"token": "abcdef.0123456789abcdef", "token-ttl": "2h"},
        {"kubernetes-version": "stable", "control-plane-endpoint": "cp.example:6443"},
        {"cri-socket": "/run/crio/crio.sock", "image-repository": "mirror.example/k8s"},
        {"certificate-key": "0" * 64, "cert-dir": "/srv/pki", "service-dns-domain": "corp.local"},
    ],
)
def test_usual_flags_are_built_directly_and_equal_the_parsed_config(overrides: dict[str, object]) -> None:
    direct = load(overrides, HOST, direct=True)
    assert isinstance(direct, Config)
    assert_same(direct, load(overrides, HOST, direct=False))


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("apiserver-bind-port", "abc"),  # a string the loader cannot turn into a port
        ("apiserver-bind-port", True),  # strict: a bool is no integer
        ("token-ttl", "bogus"),  # the duration parser's own message
        ("node-name", 5),
        ("apiserver-cert-extra-sans", [1, 2]),
    ],
)
def test_a_value_of_the_wrong_type_is_left_to_pydantic_and_refused_alike(flag: str, value: object) -> None:
    init_raw: dict[str, Any] = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration"}
    cluster_raw: dict[str, Any] = {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration"}
    loader_module._apply_overrides(
        {flag: value}, {"InitConfiguration": init_raw, "ClusterConfiguration": cluster_raw}
    )
    assert (
        construct(InitConfiguration, init_raw) is None or construct(ClusterConfiguration, cluster_raw) is None
    )
    direct, parsed = load({flag: value}, HOST, direct=True), load({flag: value}, HOST, direct=False)
    assert isinstance(direct, ConfigError)
    assert_same(direct, parsed)


# Documents as a file could hold them (YAML keys, values of any type): whatever construct() builds,
# pydantic builds the same from the same data; construct() may only decline.
SCALAR = st.one_of(st.none(), TEXT, st.integers(-2, 70000), st.booleans(), st.just(1.5))
ARG = st.fixed_dictionaries({"name": TEXT}, optional={"value": SCALAR, "bogus": SCALAR})
API_SERVER = st.fixed_dictionaries(
    {},
    optional={
        "certSANs": st.one_of(st.lists(TEXT, max_size=3), SCALAR),
        "extraArgs": st.one_of(st.lists(ARG, max_size=2), SCALAR),
        "timeoutForControlPlane": SCALAR,
        "cert_sans": st.lists(TEXT, max_size=2),
        "unknown": SCALAR,
    },
)
TOKEN = st.fixed_dictionaries(
    {},
    optional={"token": SCALAR, "ttl": SCALAR, "usages": st.lists(TEXT, max_size=2), "groups": SCALAR},
)
TIMEOUTS = st.dictionaries(
    st.sampled_from(["kubeletHealthCheck", "kubernetesAPICall", "tlsBootstrap", "kubernetes_api_call", "x"]),
    SCALAR,
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@example(data=(APIServer, {"certSANs": ["a"], "cert_sans": ["b"]}))
@example(data=(InitConfiguration, {"localAPIEndpoint": {"bindPort": True}, "dryRun": 1}))
@example(data=(Timeouts, {"kubernetesAPICall": "1h", "kubernetes_api_call": "2h"}))
@given(
    data=st.one_of(
        st.tuples(st.just(APIServer), API_SERVER),
        st.tuples(st.just(BootstrapToken), TOKEN),
        st.tuples(st.just(Timeouts), TIMEOUTS),
        st.tuples(
            st.just(ClusterConfiguration),
            st.fixed_dictionaries(
                {},
                optional={
                    "kind": st.sampled_from(["ClusterConfiguration", "InitConfiguration"]),
                    "apiServer": st.one_of(API_SERVER, SCALAR),
                    "networking": st.dictionaries(
                        st.sampled_from(["podSubnet", "serviceSubnet", "dnsDomain", "nope"]), SCALAR
                    ),
                    "featureGates": st.just({"A": True}),
                },
            ),
        ),
        st.tuples(
            st.just(InitConfiguration),
            st.fixed_dictionaries(
                {},
                optional={
                    "bootstrapTokens": st.one_of(st.lists(TOKEN, max_size=2), SCALAR),
                    "localAPIEndpoint": st.dictionaries(
                        st.sampled_from(["advertiseAddress", "bindPort"]), SCALAR
                    ),
                    "timeouts": TIMEOUTS,
                    "dryRun": SCALAR,
                },
            ),
        ),
    )
)
def test_construct_builds_only_what_pydantic_builds_from_the_same_data(
    data: tuple[type, dict[str, Any]],
) -> None:
    from pydantic import ValidationError

    model, raw = data
    built = construct(model, raw)
    try:
        parsed = validate(model, raw)
    except ValidationError:
        assert built is None, f"construct() accepted data pydantic refuses: {raw!r}"
        return
    if built is not None:
        assert built == parsed
        assert given_fields(built) == given_fields(parsed)


def test_a_run_without_a_config_file_never_imports_pydantic() -> None:
    script = (
        "import json, sys; from bootstrap.config import load_config;"
        "cfg = load_config(None, {'node-name': 'cp1', 'advertise-address': '10.0.0.1', 'token-ttl': '1h',"
        " 'apiserver-bind-port': '7443', 'apiserver-cert-extra-sans': 'a,b'});"
        "print(json.dumps([cfg.bind_port, 'pydantic' in sys.modules]))"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [7443, False]


def test_every_yaml_key_is_the_one_pydantic_would_generate() -> None:
    # The models name their keys without pydantic (model._camel); kubeadm's spelling must not drift.
    from dataclasses import fields

    from pydantic.alias_generators import to_camel

    from bootstrap.config import join_model, model

    documents = [
        cls
        for module in (model, join_model)
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, model._Model) and cls is not model._Model
    ]
    assert len(documents) >= 25
    for cls in documents:
        for f in fields(cls):
            assert aliases(cls)[f.name] == f.metadata.get("alias", to_camel(f.name)), (cls, f.name)
