"""The pre-load peek at a config file: it may only say "the default algorithm holds" when that is certain."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from bootstrap.config.peek import may_choose_key_algorithm

INIT = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n"
CLUSTER = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n"


@pytest.mark.parametrize(
    ("text", "chooses"),
    [
        (INIT, False),
        (f"{INIT}---\n{CLUSTER}clusterName: demo\n", False),
        (f"{CLUSTER}encryptionAlgorithm: ECDSA-P256\n", True),
        (f"{CLUSTER}encryptionAlgorithm: RSA-2048\n", True),
        (f'{CLUSTER}"encryption\\x41lgorithm": ECDSA-P256\n', True),  # an escaped key
        (f"{CLUSTER}# encryptionAlgorithm: in a comment still counts\n", True),
    ],
)
def test_only_a_file_that_never_names_the_field_leaves_the_default(
    tmp_path: Path, text: str, chooses: bool
) -> None:
    config = tmp_path / "kubeadm.yaml"
    config.write_text(text)
    assert may_choose_key_algorithm(config) is chooses


def test_an_unreadable_path_may_choose(tmp_path: Path) -> None:
    assert may_choose_key_algorithm(tmp_path / "missing.yaml") is True
    assert may_choose_key_algorithm(tmp_path) is True  # a directory


def test_a_pipe_is_not_read(tmp_path: Path) -> None:
    # --config <(...): whatever the peek read would be missing when the loader reads the config.
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def write_config() -> None:
        with open(fifo, "wb") as out:
            out.write(INIT.encode())

    writer = threading.Thread(target=write_config, daemon=True)
    writer.start()
    assert may_choose_key_algorithm(fifo) is True
    with open(fifo, "rb") as stream:  # the loader's read: all of it is still there
        received.append(stream.read())
    writer.join(timeout=5)
    assert received == [INIT.encode()]
