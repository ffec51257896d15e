"""Kubernetes client settings from a kubeconfig, with its credentials held in memory only.

The official client's kubeconfig loader copies embedded keys and certificates into files under
``$TMPDIR`` and removes them only at interpreter exit, so a killed run leaves admin.conf's private
key behind. Here the TLS material goes into anonymous memory files (``memfd_create``): urllib3 loads
them through their ``/proc/self/fd`` path whenever it opens a connection, and they vanish with the
process, however it ends. Nothing is ever written to disk.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kubernetes.client import Configuration

    from bootstrap.cluster.client import Credentials


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


class MemoryFiles:
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


def client_configuration(credentials: Credentials) -> tuple[Configuration, MemoryFiles]:
    """A client Configuration for a kubeconfig's current context (already read and checked by
    :func:`bootstrap.cluster.client.read_kubeconfig`), TLS verified against its CA.

    The CA, client certificate and key go into memory files; close the returned files after the client.
    """
    from kubernetes.client import Configuration

    configuration = Configuration()
    configuration.host = credentials.server
    files = MemoryFiles()
    try:
        if credentials.ca_pem is not None:
            configuration.ssl_ca_cert = files.add("ca.crt", credentials.ca_pem)
        if credentials.client_cert_pem is not None:
            configuration.cert_file = files.add("client.crt", credentials.client_cert_pem)
        if credentials.client_key_pem is not None:
            configuration.key_file = files.add("client.key", credentials.client_key_pem)
    except BaseException:
        files.close()
        raise
    if credentials.token is not None:
        configuration.api_key = {"authorization": credentials.token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
    return configuration, files
