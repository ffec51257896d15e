"""Join discovery: learn the cluster's CA and API server address, and decide whether to trust them.

Token discovery (the bootstrap-token flow) never sends the token to the server: the first fetch of
``kube-public/cluster-info`` is anonymous over TLS that verifies nothing, and trust comes from the
bootstrap signer's detached JWS over the ConfigMap's ``kubeconfig`` (HS256 keyed by the token secret,
which only the cluster and the joiner know) plus the user's pins on the CA's public key. A second fetch
over TLS verified with that CA, to the same endpoint, must return the same bytes, so the endpoint the
user typed is proven to be the cluster the pins name.

File discovery (``--discovery-file``, a kubeconfig path or an https URL) trusts the file and uses
cluster-info only to fill in a CA the file lacks.

The fetches use ``ssl`` and ``http.client`` rather than the Kubernetes client: three anonymous GETs do
not need it, and an unverified context must never be a client setting that could leak elsewhere.
Proxy variables are not honoured here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.client
import json
import re
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bootstrap.cluster.apierror import ApiError, Reason, tls_failure
from bootstrap.cluster.clientconfig import MemoryFile
from bootstrap.config.tokens import TOKEN_RE
from bootstrap.errors import ConfigError, PhaseError

CLUSTER_INFO_PATH = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
JWS_PREFIX = "jws-kubeconfig-"
PIN_RE = re.compile(r"^sha256:([0-9a-fA-F]{64})$")
DEFAULT_TIMEOUT = 300.0  # JoinConfiguration.timeouts.discovery
# kubeadm polls every 5 s; we start faster because the signer normally lags by well under a second.
FIRST_INTERVAL = 0.5
MAX_INTERVAL = 5.0
REQUEST_TIMEOUT = 10.0
# cluster-info is a few kilobytes; a server sending more is not one to parse.
MAX_BODY = 4 << 20
NEW_TOKEN_HINT = "make a new one on a control-plane node: bootstrap token create --print-join-command"

Progress = Callable[[str], None]


class DiscoveryError(PhaseError):
    """Discovery failed; ``cause`` says why, for callers and tests (never parse the message)."""

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class DiscoveredCluster:
    """What discovery established: the server and CA to use for the TLS bootstrap.

    ``kubeconfig`` is the text later steps build on: cluster-info's for token discovery (no users),
    the file's, with its CA embedded, for file discovery. ``credentials`` tells whether it carries a
    client identity (file discovery only), so that a TLS bootstrap token is not needed.
    """

    server: str
    ca_pem: bytes
    kubeconfig: str
    credentials: bool = False
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class TokenDiscovery:
    """The settings of token discovery (flags and ``JoinConfiguration.discovery.bootstrapToken``)."""

    endpoint: str  # host:port as typed, e.g. 10.0.0.10:6443 or [fd00::1]:6443
    token: str
    ca_cert_hashes: tuple[str, ...] = ()
    unsafe_skip_ca_verification: bool = False
    timeout: float = DEFAULT_TIMEOUT


@dataclass
class _Clock:
    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


# -- the crypto, kept small enough to check against the Go test vectors -------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def detached_jws(content: str, token_id: str, token_secret: str) -> str:
    """The bootstrap signer's signature of ``content``: a JWS (RFC 7515) with the payload detached."""
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    signing_input = f"{header}.{_b64url(content.encode())}".encode()
    mac = hmac.new(token_secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}..{_b64url(mac)}"


def ca_cert_hashes(ca_pem: bytes) -> list[str]:
    """``sha256:<hex>`` of the SubjectPublicKeyInfo of every certificate in a PEM bundle."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    hashes = []
    for cert in x509.load_pem_x509_certificates(ca_pem):
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        hashes.append(f"sha256:{hashlib.sha256(spki).hexdigest()}")
    return hashes


# -- input checks -----------------------------------------------------------------------------------
def parse_pin(value: str, field_name: str) -> str:
    """A CA pin, normalised to lower case; a :class:`ConfigError` naming ``field_name`` otherwise."""
    match = PIN_RE.match(value.strip())
    if match is None:
        raise ConfigError(
            f"{field_name}: {value!r} is not a CA hash: expected sha256:<64 hex digits> "
            "(on a control-plane node: bootstrap token create --print-join-command prints it)"
        )
    return f"sha256:{match[1].lower()}"


def parse_endpoint(endpoint: str, field_name: str = "apiServerEndpoint") -> tuple[str, int]:
    """(host, port) of ``host:port`` or ``[v6]:port``."""
    match = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d{1,5})|([^:/\s\[\]]+):(\d{1,5})", endpoint.strip())
    if match is None:
        raise ConfigError(f"{field_name}: {endpoint!r} is not host:port (for example 10.0.0.10:6443)")
    host, port = (match[1], match[2]) if match[1] else (match[3], match[4])
    if not 0 < int(port) < 65536:
        raise ConfigError(f"{field_name}: port {port} of {endpoint!r} is out of range")
    return host, int(port)


def _check_token_settings(settings: TokenDiscovery) -> tuple[str, str, list[str]]:
    problems: list[str] = []
    match = TOKEN_RE.match(settings.token)
    if match is None:
        # Never echo the value: it is a credential.
        problems.append(
            "discovery.bootstrapToken.token: not a bootstrap token of the form [a-z0-9]{6}.[a-z0-9]{16}"
        )
    pins = []
    for index, value in enumerate(settings.ca_cert_hashes):
        try:
            pins.append(parse_pin(value, f"discovery.bootstrapToken.caCertHashes[{index}]"))
        except ConfigError as exc:
            problems += exc.problems
    if not settings.ca_cert_hashes and not settings.unsafe_skip_ca_verification:
        problems.append(
            "discovery.bootstrapToken.caCertHashes: token discovery without a CA hash trusts whatever server "
            "answers; pass --discovery-token-ca-cert-hash sha256:<hash> (or, knowingly, "
            "--discovery-token-unsafe-skip-ca-verification)"
        )
    try:
        parse_endpoint(settings.endpoint, "discovery.bootstrapToken.apiServerEndpoint")
    except ConfigError as exc:
        problems += exc.problems
    if settings.timeout <= 0:
        problems.append("timeouts.discovery: must be positive")
    if problems:
        raise ConfigError(problems)
    assert match is not None
    return match[1], match[2], pins


# -- HTTP -------------------------------------------------------------------------------------------
def _url(host: str, port: int, path: str = "") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"https://{shown}:{port}{path}"


def _insecure_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # trust comes from the JWS and the pins, not from TLS
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _verified_context(ca_pem: bytes | None) -> ssl.SSLContext:
    if ca_pem is None:
        return ssl.create_default_context()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_verify_locations(cadata=ca_pem.decode("ascii", "replace"))
    except ssl.SSLError as exc:
        raise ApiError(
            f"the CA is not a usable PEM certificate ({exc.reason})", reason=Reason.KUBECONFIG
        ) from None
    return context


def _get(
    host: str,
    port: int,
    path: str,
    context: ssl.SSLContext,
    timeout: float,
    trusted: str,
    headers: dict[str, str] | None = None,
) -> bytes:
    """The body of a 200 answer to GET ``path``; an :class:`ApiError` (with its reason) otherwise."""
    url = _url(host, port, path)
    connection = http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Accept": "application/json", **(headers or {})})
        response = connection.getresponse()
        body = response.read(MAX_BODY + 1)
    except ssl.SSLCertVerificationError as exc:
        raise tls_failure(url, exc, trusted) from None
    except TimeoutError:
        raise ApiError(f"{url}: timed out", reason=Reason.TIMEOUT) from None
    except ConnectionRefusedError:
        raise ApiError(f"{url}: connection refused", reason=Reason.UNREACHABLE) from None
    except (OSError, http.client.HTTPException) as exc:
        cause = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or type(exc).__name__
        raise ApiError(f"{url}: {cause}", reason=Reason.UNREACHABLE) from None
    finally:
        connection.close()
    if response.status != 200:
        raise ApiError(
            f"{url}: HTTP {response.status} {_status_message(body)}".rstrip(), status=response.status
        )
    if len(body) > MAX_BODY:
        raise ApiError(f"{url}: answer larger than {MAX_BODY} bytes", reason=Reason.REJECTED)
    return body


def _status_message(body: bytes) -> str:
    try:
        message = json.loads(body).get("message", "")
    except (ValueError, AttributeError):
        return ""
    return " ".join(str(message).split())[:200]


# -- cluster-info -----------------------------------------------------------------------------------
def _cluster_info_data(body: bytes, url: str) -> dict[str, str]:
    try:
        obj = json.loads(body)
    except ValueError:
        obj = None
    data = obj.get("data") if isinstance(obj, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("kubeconfig"), str):
        raise DiscoveryError(
            f"{url} is not a cluster-info ConfigMap with a kubeconfig: is this the API server of a "
            "cluster made by bootstrap init?",
            "invalid-cluster-info",
        )
    return {str(k): v for k, v in data.items() if isinstance(v, str)}


def _kubeconfig_cluster(text: str, source: str) -> tuple[str, bytes | None]:
    """(server, CA PEM or None) of the only (or first) cluster of a kubeconfig text."""
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        doc = None
    clusters = doc.get("clusters") if isinstance(doc, dict) else None
    entry = clusters[0] if isinstance(clusters, list) and clusters else None
    cluster = entry.get("cluster") if isinstance(entry, dict) else None
    server = cluster.get("server") if isinstance(cluster, dict) else None
    if not isinstance(cluster, dict) or not isinstance(server, str) or not server:
        raise DiscoveryError(f"{source}: the kubeconfig names no cluster server", "invalid-cluster-info")
    ca = cluster.get("certificate-authority-data")
    if ca is None:
        return server, None
    try:
        return server, base64.b64decode("".join(str(ca).split()), validate=True)
    except (binascii.Error, ValueError):
        raise DiscoveryError(
            f"{source}: certificate-authority-data is not base64", "invalid-cluster-info"
        ) from None


class _NotSignedYet(Exception):
    """cluster-info has no signature for our token id (yet: the signer adds it a little later)."""


def _retrying(
    attempt: Callable[[float], DiscoveredCluster],
    timeout: float,
    clock: _Clock,
    on_timeout: Callable[[BaseException], DiscoveryError],
    progress: Progress | None,
    hint: Callable[[ApiError], str] = lambda _: "",
) -> DiscoveredCluster:
    """Run ``attempt`` until it succeeds, fails for good, or ``timeout`` passes; what can heal (the
    server not up, 5xx, 429, the signature not there yet) is retried, nothing else."""
    deadline = clock.now() + timeout
    interval = FIRST_INTERVAL
    last_said = ""
    while True:
        try:
            # No request may outlast the discovery deadline by more than a moment.
            return attempt(max(0.2, min(REQUEST_TIMEOUT, deadline - clock.now())))
        except _NotSignedYet as exc:
            last: BaseException = exc
        except ApiError as exc:
            if not exc.transient:
                raise DiscoveryError(f"{exc}{hint(exc)}", exc.reason.value) from None
            last = exc
        said = str(last)
        if progress is not None and said != last_said:
            progress(said)
            last_said = said
        remaining = deadline - clock.now()
        if remaining <= 0:
            raise on_timeout(last)
        clock.sleep(min(interval, remaining))
        interval = min(interval * 2, MAX_INTERVAL)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def discover_token(
    settings: TokenDiscovery,
    *,
    progress: Progress | None = None,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> DiscoveredCluster:
    """Token discovery, as ``kubeadm join --token ... --discovery-token-ca-cert-hash ...`` does it.

    Bad settings are a :class:`ConfigError` (nothing fetched); every other failure a
    :class:`DiscoveryError` with one line saying what to do.
    """
    token_id, token_secret, pins = _check_token_settings(settings)
    host, port = parse_endpoint(settings.endpoint)
    url = _url(host, port, CLUSTER_INFO_PATH)
    clock = _Clock(now, sleep)

    def attempt(request_timeout: float) -> DiscoveredCluster:
        body = _get(host, port, CLUSTER_INFO_PATH, _insecure_context(), request_timeout, "no verification")
        data = _cluster_info_data(body, url)
        kubeconfig = data["kubeconfig"]
        signature = data.get(f"{JWS_PREFIX}{token_id}")
        if signature is None:
            signed = sorted(k[len(JWS_PREFIX) :] for k in data if k.startswith(JWS_PREFIX))
            raise _NotSignedYet(
                f"cluster-info at {_url(host, port)} has no signature for token id {token_id!r} yet"
                + (
                    ""
                    if signed
                    else " (it has none at all: is kube-controller-manager's bootstrapsigner running?)"
                )
            )
        if not hmac.compare_digest(signature, detached_jws(kubeconfig, token_id, token_secret)):
            raise DiscoveryError(
                f"the cluster-info signature for token id {token_id!r} at {_url(host, port)} does not match "
                "the token's secret: the token is mistyped, or this server is not the cluster it belongs "
                "to; refusing to trust it",
                "signature-mismatch",
            )
        server, ca_pem = _kubeconfig_cluster(kubeconfig, f"cluster-info at {_url(host, port)}")
        if ca_pem is None:
            raise DiscoveryError(
                f"cluster-info at {_url(host, port)} carries no certificate-authority-data",
                "invalid-cluster-info",
            )
        if settings.unsafe_skip_ca_verification and not pins:
            return DiscoveredCluster(server=server, ca_pem=ca_pem, kubeconfig=kubeconfig)
        _check_pins(ca_pem, pins, host, port)
        # Second fetch: the endpoint typed must serve a certificate from the pinned CA, and the same bytes.
        trusted = f"the CA pinned by --discovery-token-ca-cert-hash, from cluster-info at {_url(host, port)}"
        try:
            again = _get(host, port, CLUSTER_INFO_PATH, _verified_context(ca_pem), request_timeout, trusted)
        except ApiError as exc:
            if exc.reason is not Reason.TLS:
                raise
            raise DiscoveryError(
                f"{exc}; the API server must present a certificate from the pinned CA that is valid for "
                f"{host} (the address given to join): use an address in its SANs (apiServer.certSANs)",
                "tls",
            ) from None
        if _cluster_info_data(again, url)["kubeconfig"] != kubeconfig:
            raise DiscoveryError(
                f"cluster-info at {_url(host, port)} changed between the unverified and the verified fetch; "
                "refusing to trust it (run join again; if this repeats, something intercepts the connection)",
                "changed",
            )
        return DiscoveredCluster(server=server, ca_pem=ca_pem, kubeconfig=kubeconfig)

    def on_timeout(last: BaseException) -> DiscoveryError:
        waited = _duration(settings.timeout)
        if isinstance(last, _NotSignedYet):
            return DiscoveryError(
                f'token id "{token_id}" is invalid for this cluster or it has expired (no signature for '
                f"it in cluster-info at {_url(host, port)} after {waited}); {NEW_TOKEN_HINT}",
                "token-unknown",
            )
        return DiscoveryError(
            f"cannot reach the API server at {_url(host, port)} for discovery after {waited} ({last}); check "
            "the address and port, that bootstrap init finished there, and that this node can reach it",
            "unreachable",
        )

    return _retrying(attempt, settings.timeout, clock, on_timeout, progress, _token_hint)


def _token_hint(error: ApiError) -> str:
    """What a permanent failure of the anonymous fetch means for the user."""
    if error.reason is Reason.FORBIDDEN:
        return (
            "; anonymous users may not read cluster-info there (bootstrap init creates the "
            "kubeadm:bootstrap-signer-clusterinfo RoleBinding; is the API server's --anonymous-auth off?)"
        )
    if error.reason is Reason.UNAUTHORIZED:
        return "; the API server refuses anonymous requests (--anonymous-auth=false): use --discovery-file"
    if error.status == 404:
        return (
            "; the cluster has no kube-public/cluster-info: has bootstrap init finished its "
            "bootstrap-token phase?"
        )
    return ""


def _check_pins(ca_pem: bytes, pins: list[str], host: str, port: int) -> None:
    try:
        presented = ca_cert_hashes(ca_pem)
    except ValueError:
        raise DiscoveryError(
            f"cluster-info at {_url(host, port)}: certificate-authority-data holds no PEM certificate",
            "invalid-cluster-info",
        ) from None
    if not set(presented) & set(pins):
        raise DiscoveryError(
            f"the cluster CA at {_url(host, port)} does not match --discovery-token-ca-cert-hash: the "
            f"server presented {', '.join(presented)}; get your cluster's hash on a control-plane node "
            "with: bootstrap token create --print-join-command",
            "ca-mismatch",
        )


# -- file discovery ---------------------------------------------------------------------------------
@dataclass
class _FileKubeconfig:
    doc: dict[str, Any]
    server: str
    ca_pem: bytes | None
    client_cert: bytes | None = None
    client_key: bytes | None = None
    token: str | None = None


def _load_source(source: str, timeout: float) -> tuple[bytes, Path | None]:
    """The bytes of a ``--discovery-file`` (a path, or an https URL verified with the system CAs)."""
    if source.startswith("https://"):
        parts = urlsplit(source)
        if not parts.hostname:
            raise ConfigError(f"--discovery-file: {source!r} has no host")
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        port = parts.port or 443
        try:
            body = _get(parts.hostname, port, path, ssl.create_default_context(), timeout, "the system's CAs")
        except ApiError as exc:
            raise DiscoveryError(
                f"--discovery-file: cannot download {source}: {exc}", exc.reason.value
            ) from None
        return body, None
    if "://" in source:
        raise ConfigError(f"--discovery-file: {source!r}: only a file path or an https:// URL is accepted")
    file = Path(source)
    try:
        return file.read_bytes(), file
    except FileNotFoundError:
        raise ConfigError(f"--discovery-file: {source}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"--discovery-file: {source}: cannot read it ({exc.strerror or exc})") from None


def _file_data(section: dict[str, Any], key: str, base: Path | None, source: str) -> bytes | None:
    value = section.get(f"{key}-data")
    if value is not None:
        try:
            return base64.b64decode("".join(str(value).split()), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"--discovery-file {source}: {key}-data is not base64") from None
    name = section.get(key)
    if not name:
        return None
    if base is None:
        raise ConfigError(
            f"--discovery-file {source}: {key} names a file, which a downloaded kubeconfig cannot"
        )
    target = base.parent / str(name)
    try:
        return target.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--discovery-file {source}: {key} {target}: {exc.strerror or exc}") from None


def _parse_file(raw: bytes, base: Path | None, source: str) -> _FileKubeconfig:
    import yaml

    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError:
        doc = None  # the parser's message quotes the text, which may hold a key
    if not isinstance(doc, dict):
        raise ConfigError(f"--discovery-file {source}: not a kubeconfig (YAML mapping)")
    contexts = [c for c in doc.get("contexts") or [] if isinstance(c, dict)]
    current = doc.get("current-context")
    chosen = next((c for c in contexts if c.get("name") == current), contexts[0] if contexts else None)
    context = (chosen or {}).get("context") or {}
    if not isinstance(context, dict):
        context = {}

    def named(section: str, name: object) -> dict[str, Any]:
        entries = [e for e in doc.get(section) or [] if isinstance(e, dict)]
        entry = next((e for e in entries if e.get("name") == name), entries[0] if entries else None)
        body = (entry or {}).get(section[:-1])
        return body if isinstance(body, dict) else {}

    cluster = named("clusters", context.get("cluster"))
    user = named("users", context.get("user"))
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith("https://"):
        raise ConfigError(f"--discovery-file {source}: the cluster has no https server")
    token = user.get("token")
    return _FileKubeconfig(
        doc=doc,
        server=server,
        ca_pem=_file_data(cluster, "certificate-authority", base, source),
        client_cert=_file_data(user, "client-certificate", base, source),
        client_key=_file_data(user, "client-key", base, source),
        token=token if isinstance(token, str) and token else None,
    )


def file_server(source: str) -> str | None:
    """The server a local ``--discovery-file`` names, read without contacting anything; None for an
    https URL or a file that cannot be read or parsed (a dry run's stand-in cluster needs only this)."""
    if source.startswith("https://"):
        return None
    try:
        raw, base = _load_source(source, REQUEST_TIMEOUT)
        return _parse_file(raw, base, source).server
    except ConfigError:
        return None


def discover_file(
    source: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress | None = None,
    now: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> DiscoveredCluster:
    """File discovery: trust the kubeconfig at ``source``, confirm its server answers, and take the
    CA from cluster-info when the file has none."""
    import yaml

    raw, base = _load_source(source, REQUEST_TIMEOUT)
    parsed = _parse_file(raw, base, source)
    parts = urlsplit(parsed.server)
    if not parts.hostname:
        raise ConfigError(f"--discovery-file {source}: server {parsed.server!r} has no host")
    host, port = parts.hostname, parts.port or 443
    clock = _Clock(now, sleep)

    def attempt(request_timeout: float) -> DiscoveredCluster:
        context = _verified_context(parsed.ca_pem)
        memory: list[MemoryFile] = []
        try:
            if parsed.client_cert is not None and parsed.client_key is not None:
                memory = [
                    MemoryFile("client.crt", parsed.client_cert),
                    MemoryFile("client.key", parsed.client_key),
                ]
                context.load_cert_chain(memory[0].path, memory[1].path)
            headers = {"Authorization": f"Bearer {parsed.token}"} if parsed.token else {}
            trusted = f"the CA of --discovery-file {source}" if parsed.ca_pem else "the system's CAs"
            body = _get(host, port, CLUSTER_INFO_PATH, context, request_timeout, trusted, headers)
        except ApiError as exc:
            if exc.reason is not Reason.FORBIDDEN:
                raise
            body = None  # the file's identity may not read cluster-info: the file alone is trusted
        finally:
            for item in memory:
                item.close()
        ca_pem, warnings = parsed.ca_pem, []
        if body is not None:
            info_server, info_ca = _kubeconfig_cluster(
                _cluster_info_data(body, _url(host, port, CLUSTER_INFO_PATH))["kubeconfig"],
                f"cluster-info at {_url(host, port)}",
            )
            if ca_pem is None:
                ca_pem = info_ca
            if info_server.rstrip("/") != parsed.server.rstrip("/"):
                warnings.append(
                    f"--discovery-file {source} names server {parsed.server}, cluster-info names "
                    f"{info_server}; using the file's"
                )
        if ca_pem is None:
            raise DiscoveryError(
                f"--discovery-file {source} has no certificate-authority-data and cluster-info could not "
                "supply it",
                "no-ca",
            )
        doc = parsed.doc
        for entry in doc.get("clusters") or []:
            body_ = entry.get("cluster") if isinstance(entry, dict) else None
            if isinstance(body_, dict) and body_.get("server") == parsed.server:
                body_.pop("certificate-authority", None)
                body_["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
        return DiscoveredCluster(
            server=parsed.server,
            ca_pem=ca_pem,
            kubeconfig=yaml.safe_dump(doc, sort_keys=False),
            credentials=parsed.token is not None or parsed.client_cert is not None,
            warnings=tuple(warnings),
        )

    def on_timeout(last: BaseException) -> DiscoveryError:
        return DiscoveryError(
            f"cannot reach the API server at {_url(host, port)} named by --discovery-file {source} after "
            f"{_duration(timeout)} ({last}); check the file's server and that this node can reach it",
            "unreachable",
        )

    if timeout <= 0:
        raise ConfigError("timeouts.discovery: must be positive")

    def hint(error: ApiError) -> str:
        if error.reason is Reason.UNAUTHORIZED:
            return f"; the API server refuses the credentials in --discovery-file {source}"
        return ""

    return _retrying(attempt, timeout, clock, on_timeout, progress, hint)


__all__ = [
    "DiscoveredCluster",
    "DiscoveryError",
    "TokenDiscovery",
    "ca_cert_hashes",
    "detached_jws",
    "discover_file",
    "discover_token",
    "parse_endpoint",
    "parse_pin",
]
