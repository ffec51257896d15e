"""Property-based tests: no config file, however broken, gets past validation into Python's internals.

Configs are generated from the kubeadm v1beta4 model (valid ones), then mutated: keys deleted or
renamed, values replaced by wrong types, huge or odd values (unicode, whitespace, newlines, non-ASCII
digits, overflowing durations), documents reordered, and the YAML text itself broken. For every
input, ``config validate`` and ``phase certs`` (in-process, fresh ``--rootfs``) must either succeed
or exit 2/3 with every problem on one line naming a field or the file; never an internal error, never
a file written on refusal, never more than 5 s; and ``config validate`` accepting a file means
``phase certs`` succeeds with it (validation is the gate).

Profiles (``HYPOTHESIS_PROFILE``): ``ci`` (the default when ``CI`` is set, and otherwise too) runs
enough examples to matter in well under two minutes; ``long`` is for local runs (thousands). The
example database lives in ``tests/.hypothesis-db`` so every case ever found stays a regression.
"""

from __future__ import annotations

import contextlib
import io
import operator
import os
import re
import signal
import string
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from bootstrap.cli.main import main
from bootstrap.config import ClusterConfiguration, InitConfiguration
from bootstrap.config.model import aliases
from tests.conftest import files_under
from tests.tools import memory_scratch_root

DATABASE = DirectoryBasedExampleDatabase(str(Path(__file__).parent / ".hypothesis-db"))
_COMMON: dict[str, Any] = {
    "database": DATABASE,
    "deadline": None,  # timing is asserted per command below, with a clear message
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
# About 45 s on an idle 2-core machine: enough to find a new class of bad input, well inside 2 minutes.
settings.register_profile("ci", max_examples=600, **_COMMON)
settings.register_profile("long", max_examples=20_000, **_COMMON)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Every accepted example writes a PKI, fsyncing each file: on tmpfs that costs nothing.
SCRATCH = memory_scratch_root()
LIMIT_SECONDS = 5.0
VERSION = "kubeadm.k8s.io/v1beta4"
LOWER, LOWER_DIGITS = string.ascii_lowercase, string.ascii_lowercase + string.digits

# ---- valid configs, drawn from the model -------------------------------------------------------
# Exactly the names [a-z]([a-z0-9-]{0,14}[a-z0-9])? matches, built from parts (from_regex: 3x the cost).
names = st.builds(
    operator.add,
    st.sampled_from(LOWER),
    st.just("")
    | st.builds(
        operator.add,
        st.text(LOWER_DIGITS + "-", max_size=14),
        st.sampled_from(LOWER_DIGITS),
    ),
)
dns_names = st.lists(names, min_size=1, max_size=3).map(".".join)
ipv4 = st.ip_addresses(v=4).map(str)
ips = st.ip_addresses().map(str)
ports = st.integers(1, 65535)
paths = st.lists(names, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))
durations = st.builds(lambda n, unit: f"{n}{unit}", st.integers(1, 8000), st.sampled_from(["h", "m", "s"]))
versions = st.builds(lambda minor, patch: f"v1.{minor}.{patch}", st.integers(31, 35), st.integers(0, 9))
endpoints = st.one_of(
    dns_names,
    ipv4,
    st.builds(lambda h, p: f"{h}:{p}", dns_names, ports),
    st.builds(lambda h, p: f"[{h}]:{p}", st.ip_addresses(v=6).map(str), ports),
)
args = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["v", "profiling", "secure-port", "bind-address"])}
    ).flatmap(
        lambda a: st.fixed_dictionaries(
            {
                "name": st.just(a["name"]),
                "value": {
                    "secure-port": ports.map(str),
                    "bind-address": ipv4,
                }.get(a["name"], st.sampled_from(["2", "false", "x"])),
            }
        )
    ),
    max_size=2,
)


@st.composite
def valid_documents(draw: st.DrawFn) -> list[dict[str, Any]]:
    """An InitConfiguration, a ClusterConfiguration and maybe a KubeletConfiguration, in any order."""
    init: dict[str, Any] = {
        "apiVersion": VERSION,
        "kind": "InitConfiguration",
        "nodeRegistration": {"name": draw(names)},
        "localAPIEndpoint": {"advertiseAddress": draw(ipv4), "bindPort": draw(ports)},
    }
    if draw(st.booleans()):
        init["nodeRegistration"]["taints"] = [{"key": draw(names), "effect": "NoSchedule"}]
    if draw(st.booleans()):
        init["timeouts"] = {"controlPlaneComponentHealthCheck": draw(durations)}
    cluster: dict[str, Any] = {
        "apiVersion": VERSION,
        "kind": "ClusterConfiguration",
        "kubernetesVersion": draw(versions),
        "clusterName": draw(names),
        # ECDSA keeps key generation fast; RSA sizes are covered by the pki tests.
        "encryptionAlgorithm": draw(st.sampled_from(["ECDSA-P256", "ECDSA-P384"])),
        "certificatesDir": draw(st.sampled_from(["/etc/kubernetes/pki"]) | paths.map(lambda p: "/etc" + p)),
        "certificateValidityPeriod": draw(durations),
        "networking": {
            "serviceSubnet": "10.96.0.0/12",
            "podSubnet": "10.244.0.0/16",
            "dnsDomain": draw(dns_names),
        },
        "apiServer": {
            "certSANs": draw(st.lists(st.one_of(dns_names, ips), max_size=3)),
            "extraArgs": draw(args),
        },
        "controllerManager": {"extraArgs": draw(args)},
    }
    if draw(st.booleans()):
        cluster["controlPlaneEndpoint"] = draw(endpoints)
    if draw(st.booleans()):
        cluster["etcd"] = {
            "local": {
                "dataDir": draw(st.sampled_from(["/var/lib/etcd"]) | paths.map(lambda p: "/var" + p)),
                "serverCertSANs": draw(st.lists(st.one_of(dns_names, ips), max_size=2)),
                "peerCertSANs": draw(st.lists(st.one_of(dns_names, ips), max_size=2)),
            }
        }
    docs = [init, cluster]
    if draw(st.booleans()):
        kubelet: dict[str, Any] = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
        }
        optional: dict[str, st.SearchStrategy[Any]] = {
            "failSwapOn": st.booleans(),
            "port": ports,
            "healthzPort": st.integers(0, 65535),
            "healthzBindAddress": ipv4,
            "staticPodPath": paths.map(lambda p: "/etc" + p),
        }
        for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=3)):
            kubelet[key] = draw(optional[key])
        docs.append(kubelet)
    return draw(st.permutations(docs))


# ---- mutations ---------------------------------------------------------------------------------
odd_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "\n",
            "\t",
            "\x00",
            "\u2028",
            "\uff19\uff19",
            "\uff16\uff14\uff14\uff13",
            "https://[",
            "[::1",
            "[::1]:99999",
            "fe80::1%eth0",
            "9999999999h",
            "87600000h",
            "2562048h",
            "-1h",
            "0",
            "/etc/kubernetes/pki/ca.crt",
            "/etc/kubernetes/pki",
            "/" + "x" * 300,
            "/a" * 2100,
            "relative/path",
            "unix://relative",
            "v1.0\n",
            "10.96.0.0/12 ",
            "a" * 70,
            "9999-12-31T23:59:59-05:00",
            "RSA-1024",
        ]
    ),
    st.builds(lambda s, pad: pad + s + pad, st.text(max_size=10), st.sampled_from([" ", "\n", "\t", "\r\n"])),
)
odd_values = st.one_of(
    odd_text,
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**40),
    st.floats(),
    st.lists(st.one_of(st.none(), st.integers(), odd_text), max_size=3),
    st.dictionaries(odd_text, st.one_of(st.none(), st.integers(), odd_text), max_size=3),
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield (*prefix, index)
            yield from _paths(value, (*prefix, index))


def _parent(docs: list[Any], path: tuple[Any, ...]) -> Any:
    node: Any = docs
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def mutated_documents(draw: st.DrawFn) -> list[Any]:
    docs = draw(valid_documents())
    for _ in range(draw(st.integers(0, 3))):
        choices = [p for p in _paths(docs) if len(p) > 1]
        if not choices:
            break
        path = draw(st.sampled_from(choices))
        parent, key = _parent(docs, path), path[-1]
        action = draw(st.sampled_from(["delete", "rename", "replace", "replace", "pad"]))
        if action == "delete":
            del parent[key]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(st.sampled_from([str(key).upper(), f"{key}x", f" {key}", str(key)[:-1] or "k"]))] = (
                parent.pop(key)
            )
        elif action == "pad" and isinstance(parent[key], str):
            parent[key] = parent[key] + draw(
                st.sampled_from([" ", "\n", "\x00", "\u00a0", "%eth0", "\uff19"])
            )
        else:
            parent[key] = draw(odd_values)
    return docs


def _dump(docs: list[Any]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True)


@st.composite
def config_texts(draw: st.DrawFn) -> str:
    """YAML text of a (possibly mutated) config, sometimes broken at the text level."""
    text = _dump(draw(mutated_documents()))
    kind = draw(st.sampled_from(["as is", "as is", "as is", "insert", "cut", "duplicate line", "yaml trick"]))
    if kind == "insert":
        at = draw(st.integers(0, len(text)))
        text = (
            text[:at]
            + draw(st.sampled_from(["[", "]", "{", ":", "- ", "&a ", "*a", "\t", "'", '"', "\n  "]))
            + text[at:]
        )
    elif kind == "cut":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + text[at + draw(st.integers(1, 20)) :]
    elif kind == "duplicate line":
        lines = text.splitlines(keepends=True)
        at = draw(st.integers(0, len(lines) - 1))
        text = "".join([*lines[: at + 1], lines[at], *lines[at + 1 :]])
    elif kind == "yaml trick":
        text = text + draw(
            st.sampled_from(
                [
                    "---\na: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                    "e: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
                    "---\n" + "[" * 300 + "]" * 300 + "\n",
                    "---\n",
                    "---\n# only a comment\n",
                    "---\n!!python/object:os.system {}\n",
                    "---\nkey: !!binary aGVsbG8=\n",
                    "\x00",
                    "---\nx: 2024-13-45\n",
                ]
            )
        )
    return text


# ---- running the commands ----------------------------------------------------------------------
class Hang(BaseException):
    """Raised by the alarm: a BaseException so the CLI's catch-all cannot turn it into an exit."""


def _on_alarm(*_: object) -> None:
    raise Hang


def run_cli(*argv: str) -> tuple[int, str, float]:
    """``bootstrap <argv>`` in-process through the real entry point: exit code, stderr, CPU seconds.

    The limit is on this process's CPU time: on a shared machine wall time measures the neighbours;
    a real hang (an alias bomb, a loop) burns CPU here, and the alarm catches one that sleeps.
    """
    err = io.StringIO()
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(int(LIMIT_SECONDS * 6))
    started = time.process_time()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            try:
                main(list(argv))
                code = 0
            except SystemExit as exited:
                code = exited.code if isinstance(exited.code, int) else (0 if exited.code is None else 1)
    except Hang:
        pytest.fail(f"bootstrap {' '.join(argv)} hung past {LIMIT_SECONDS * 6:.0f} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, err.getvalue(), time.process_time() - started


KNOWN_FIELDS = {key for model in (InitConfiguration, ClusterConfiguration) for key in aliases(model).values()}


def problems_of(stderr: str) -> list[str]:
    """The problem lines of an ``invalid configuration`` error (one, or an indented list)."""
    lines = [line for line in stderr.splitlines() if not line.startswith("warning")]
    head = next((i for i, line in enumerate(lines) if line.startswith("error: invalid configuration")), None)
    assert head is not None, stderr
    if re.match(r"error: invalid configuration \(\d+ problems\):$", lines[head]):
        found = [line[2:] for line in lines[head + 1 :]]
        assert all(line for line in found), stderr
        return found
    assert head == len(lines) - 1, f"a problem spread over several lines:\n{stderr}"
    return [lines[head].removeprefix("error: invalid configuration: ")]


def assert_names_a_field(problem: str, config: Path, docs_keys: set[str]) -> None:
    assert problem.isprintable(), problem
    if problem.startswith(str(config)):
        return
    # A field path starts with a known field or a key of the file (which may itself hold '.' or '[').
    starts = tuple(KNOWN_FIELDS | docs_keys | {"KubeletConfiguration", "KubeProxyConfiguration"})
    where = problem.split(": ", 1)[0]
    assert any(where == s or where.startswith((f"{s}.", f"{s}[")) for s in starts), (
        f"problem does not name a field: {problem}"
    )


def keys_of(text: str) -> set[str]:
    """Every mapping key of the file (when it parses): what a problem about an unknown field may name."""
    found: set[str] = set()
    walked: set[int] = set()

    def walk(node: object) -> None:
        # An alias is the same object again: walking it once finds its keys (an alias bomb is 10^5 nodes).
        if isinstance(node, dict | list):
            if id(node) in walked:
                return
            walked.add(id(node))
        if isinstance(node, dict):
            for key, value in node.items():
                found.add(str(key))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    try:
        for doc in yaml.safe_load_all(text):
            walk(doc)
    except (yaml.YAMLError, ValueError, RecursionError):
        pass  # a file that does not parse can only be refused naming the file itself
    return found


def check_one_config(text: str, on_result: Callable[[str], None] | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="kb-prop-", dir=SCRATCH) as tmp:
        config = Path(tmp) / "kubeadm.yaml"
        config.write_text(text, encoding="utf-8")
        rootfs = Path(tmp) / "rootfs"
        rootfs.mkdir()
        keys = keys_of(text)

        v_code, v_err, v_time = run_cli("config", "validate", "--config", str(config))
        assert "internal error" not in v_err, v_err
        assert v_code in (0, 3), v_err
        assert v_time < LIMIT_SECONDS, f"config validate took {v_time:.1f} s"

        c_code, c_err, c_time = run_cli("phase", "certs", "--config", str(config), "--rootfs", str(rootfs))
        assert "internal error" not in c_err, c_err
        assert c_time < LIMIT_SECONDS, f"phase certs took {c_time:.1f} s"
        if v_code == 0:
            assert c_code == 0, f"config validate accepted the file but phase certs failed:\n{c_err}"
            assert any(path.endswith("/ca.crt") for path in files_under(rootfs)), c_err
        else:
            assert c_code in (2, 3), c_err
            assert files_under(rootfs) == [], "a refused config wrote files"
            for output in (v_err, c_err):
                for problem in problems_of(output):
                    assert_names_a_field(problem, config, keys)
        if on_result is not None:
            on_result("accepted" if v_code == 0 else "refused")


COUNTS: dict[str, int] = {"accepted": 0, "refused": 0}


@pytest.fixture(scope="module", autouse=True)
def _report_counts() -> Iterator[None]:
    yield
    print(f"\nconfig properties: {COUNTS['accepted']} accepted, {COUNTS['refused']} refused")


def _count(outcome: str) -> None:
    COUNTS[outcome] += 1
    total = COUNTS["accepted"] + COUNTS["refused"]
    if PROFILE.max_examples >= 1000 and total % 250 == 0:  # progress for long local runs
        print(f"config properties: {total} examples ({COUNTS['refused']} refused)", file=sys.__stderr__)


@settings(PROFILE)
@given(config_texts())
def test_any_config_is_accepted_or_refused_cleanly(text: str) -> None:
    check_one_config(text, _count)


@settings(PROFILE, max_examples=max(PROFILE.max_examples // 4, 1))
@given(valid_documents())
def test_every_config_drawn_from_the_model_is_valid_and_issues_certificates(
    docs: list[dict[str, Any]],
) -> None:
    outcome: list[str] = []
    check_one_config(_dump(docs), outcome.append)
    assert outcome == ["accepted"]
