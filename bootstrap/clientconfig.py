"""Kubernetes client settings from a kubeconfig, with its credentials held in memory only.

The official client's kubeconfig loader copies embedded keys and certificates into files under
``$TMPDIR`` and removes them only at interpreter exit, so a killed run leaves admin.conf's private
key behind. Here the TLS material goes into anonymous memory files (``memfd_create``): urllib3 loads
them through their ``/proc/self/fd`` path whenever it opens a connection, and they vanish with the
process, however it ends. Nothing is ever written to disk.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bootstrap.errors import PhaseError

if TYPE_CHECKING:
    from kubernetes.client import Configuration


class MemoryFile:
    """Bytes in an anonymous in-memory file, readable by path while this process keeps it open."""

    def __init__(self, name: str, data: bytes) -> None:
        self.fd = os.memfd_create(name)  # close-on-exec: no program we start inherits it
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view) :]
        except BaseException:
            os.close(self.fd)
            raise

    @property
    def path(self) -> str:
        return f"/proc/self/fd/{self.fd}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Credentials:
    """The memory files behind one client's Configuration; close them when the client is done."""

    def __init__(self) -> None:
        self.files: list[MemoryFile] = []

    def add(self, name: str, data: bytes) -> str:
        memory = MemoryFile(name, data)
        self.files.append(memory)
        return memory.path

    def close(self) -> None:
        for memory in self.files:
            memory.close()
        self.files.clear()


def _named(data: dict[str, Any], section: str, name: object, path: Path) -> dict[str, Any]:
    for item in data.get(section) or []:
        if isinstance(item, dict) and item.get("name") == name:
            value = item.get(section[:-1])
            if isinstance(value, dict):
                return value
    raise PhaseError(f"{path}: no {section[:-1]} named {name!r} in {section}")


def _material(path: Path, entry: dict[str, Any], field: str, creds: Credentials) -> str | None:
    """The path to give the client for ``field`` (``<field>-data`` in memory, or the named file)."""
    embedded = entry.get(f"{field}-data")
    if embedded is not None:
        try:
            data = base64.b64decode(str(embedded), validate=True)
        except (binascii.Error, ValueError):
            # Name the field only: the value may be key material.
            raise PhaseError(f"{path}: {field}-data is not valid base64") from None
        return creds.add(field, data)
    named = entry.get(field)
    if named is None:
        return None
    return str(path.parent / str(named))  # relative to the kubeconfig, as kubectl reads it


def client_configuration(kubeconfig: Path) -> tuple[Configuration, Credentials]:
    """A client Configuration for ``kubeconfig``'s current context, TLS verified against its CA.

    Supports what kubeconfigs for a control plane hold: a server, its CA, client certificate and key
    (embedded or as files) or a bearer token. Close the returned credentials after the client.
    """
    from kubernetes.client import Configuration

    try:
        data = yaml.safe_load(kubeconfig.read_text())
    except OSError as exc:
        raise PhaseError(f"{kubeconfig}: cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise PhaseError(f"{kubeconfig}: not valid YAML ({type(exc).__name__})") from exc
    if not isinstance(data, dict):
        raise PhaseError(f"{kubeconfig}: not a kubeconfig (expected a mapping)")
    contexts = [c for c in data.get("contexts") or [] if isinstance(c, dict)]
    current = data.get("current-context") or (contexts[0].get("name") if len(contexts) == 1 else None)
    context = _named(data, "contexts", current, kubeconfig)
    cluster = _named(data, "clusters", context.get("cluster"), kubeconfig)
    user = _named(data, "users", context.get("user"), kubeconfig)
    if cluster.get("insecure-skip-tls-verify"):
        raise PhaseError(f"{kubeconfig}: insecure-skip-tls-verify is set; bootstrap only talks verified TLS")
    unsupported = sorted({"exec", "auth-provider", "username", "password"} & set(user))
    if unsupported:
        raise PhaseError(f"{kubeconfig}: user authentication by {', '.join(unsupported)} is not supported")
    if not cluster.get("server"):
        raise PhaseError(f"{kubeconfig}: the cluster has no server")

    configuration = Configuration()
    configuration.host = str(cluster["server"])
    creds = Credentials()
    try:
        configuration.ssl_ca_cert = _material(kubeconfig, cluster, "certificate-authority", creds)
        configuration.cert_file = _material(kubeconfig, user, "client-certificate", creds)
        configuration.key_file = _material(kubeconfig, user, "client-key", creds)
        if cluster.get("tls-server-name"):
            configuration.tls_server_name = str(cluster["tls-server-name"])
        token = user.get("token")
        if token is None and user.get("tokenFile"):
            token_file = kubeconfig.parent / str(user["tokenFile"])
            try:
                token = token_file.read_text().strip()
            except OSError as exc:
                raise PhaseError(f"{token_file}: cannot read the token file: {exc.strerror}") from exc
        if token:
            configuration.api_key = {"authorization": f"Bearer {token}"}
    except BaseException:
        creds.close()
        raise
    return configuration, creds
