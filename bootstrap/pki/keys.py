"""Private keys: generation for the configured algorithm, PEM encoding, and a parallel key source.

Key generation dominates a bootstrap run (an RSA-2048 key takes tens of milliseconds and a run needs
about twenty), so :class:`KeySource` can generate RSA keys ahead of time in a process pool. Keys
cross the process boundary as DER bytes; ECDSA keys are cheap and always generated inline.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import multiprocessing
import os
import signal
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from types import TracebackType
from typing import TypeAlias

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bootstrap.config.keyalgorithms import DEFAULT_ENCRYPTION_ALGORITHM, ENCRYPTION_ALGORITHMS
from bootstrap.errors import PkiError

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

_CURVES: dict[str, type[ec.EllipticCurve]] = {"ECDSA-P256": ec.SECP256R1, "ECDSA-P384": ec.SECP384R1}
_CURVE_ALGORITHMS: dict[str, str] = {"secp256r1": "ECDSA-P256", "secp384r1": "ECDSA-P384"}


def normalize_algorithm(algorithm: str) -> str:
    """The algorithm name to use: empty means the default (RSA-2048), like kubeadm; unknown is an error."""
    algorithm = algorithm or DEFAULT_ENCRYPTION_ALGORITHM
    if algorithm not in ENCRYPTION_ALGORITHMS:
        raise PkiError(
            f"unsupported encryption algorithm {algorithm!r}; valid: {', '.join(ENCRYPTION_ALGORITHMS)}"
        )
    return algorithm


def generate_key(algorithm: str) -> PrivateKey:
    """A new private key for ``algorithm`` (one of ``ENCRYPTION_ALGORITHMS``)."""
    algorithm = normalize_algorithm(algorithm)
    if algorithm in _CURVES:
        return ec.generate_private_key(_CURVES[algorithm]())
    return rsa.generate_private_key(public_exponent=65537, key_size=int(algorithm.removeprefix("RSA-")))


def algorithm_of(key: PrivateKey | PublicKey) -> str:
    """The algorithm (``RSA-3072``, ``ECDSA-P256``...) of an existing key, to renew with the same kind."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    name = _CURVE_ALGORITHMS.get(key.curve.name)
    if name is None:
        raise PkiError(f"unsupported elliptic curve {key.curve.name}; supported: P-256, P-384")
    return name


def _generate_der(algorithm: str) -> bytes:
    """Worker-process entry point: generate one key and return it as PKCS#8 DER (picklable bytes)."""
    return generate_key(algorithm).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent(parent: int) -> None:
    """Worker initializer: end this worker when the run that started it ends, however it ends.

    A worker blocks on its task queue, and a forked worker also holds that queue's write end, so it
    would never see end-of-file once the run is killed: without this it outlives the run for good.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent check below still covers a dead parent
        pass
    # The parent may have died between the fork and prctl: the death signal would never come.
    if os.getppid() != parent:
        os._exit(1)


def _from_der(der: bytes) -> PrivateKey:
    # Our own worker just generated this key: re-validating it (an RSA consistency check of about
    # 60 ms a key, as long as generating it) buys nothing.
    key = serialization.load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=True)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PkiError(f"unexpected key type {type(key).__name__} from the key generator")
    return key


def private_key_pem(key: PrivateKey) -> bytes:
    """PEM as kubeadm writes it: RSA as PKCS#1 ``RSA PRIVATE KEY``, EC as SEC1 ``EC PRIVATE KEY``."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def public_key_pem(key: PrivateKey | PublicKey) -> bytes:
    """PKIX ``PUBLIC KEY`` PEM of ``key`` (the format of ``sa.pub``)."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_der(key: PrivateKey | PublicKey) -> bytes:
    """PKIX DER of the public half of ``key``; equal DER means the same key pair."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key_pem(data: bytes, what: str) -> PrivateKey:
    """Parse a PEM private key (PKCS#1, SEC1 or PKCS#8); ``what`` names the source in the error.

    The RSA consistency check is skipped (it costs as much as generating the key, on every load):
    every caller compares the key with its certificate's public key, which is what catches a wrong
    or swapped key; a key corrupted in its private half would fail loudly at first use.
    """
    try:
        key = _load_pem(data)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"{what}: not a valid unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PkiError(f"{what}: unsupported key type {type(key).__name__}; expected RSA or ECDSA")
    return key


@functools.lru_cache(maxsize=64)
def _load_pem(data: bytes) -> object:
    return serialization.load_pem_private_key(data, password=None, unsafe_skip_rsa_key_validation=True)


class KeySource:
    """Hands out private keys for one algorithm, optionally generated ahead of time in parallel.

    One per run. ``prefetch(n)`` starts ``n`` RSA generations on all cores; ``take()`` returns a
    finished one (or generates inline when none was prefetched). Always ``close()`` it (or use it as
    a context manager) so the worker processes are shut down even when the run fails.
    """

    def __init__(self, algorithm: str) -> None:
        self.algorithm = normalize_algorithm(algorithm)
        self._pool: ProcessPoolExecutor | None = None
        self._pending: deque[Future[bytes]] = deque()

    def __enter__(self) -> KeySource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def prefetch(self, count: int) -> None:
        """Start generating ``count`` more keys in the background. No-op for ECDSA, and for one key when
        no pool runs yet: starting workers for a single key costs more than generating it inline."""
        if count < 1 or self.algorithm in _CURVES or (count == 1 and self._pool is None):
            return
        if self._pool is None:
            workers = max(1, min(os.cpu_count() or 1, count))
            # fork: workers inherit the already-imported modules, so they start in milliseconds.
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
            self._pool = ProcessPoolExecutor(
                workers,
                mp_context=multiprocessing.get_context(method),
                initializer=_die_with_parent,
                initargs=(os.getpid(),),
            )
        try:
            for _ in range(count):
                self._pending.append(self._pool.submit(_generate_der, self.algorithm))
        except BaseException:
            self.close()
            raise

    @property
    def pending(self) -> int:
        """How many prefetched keys are not taken yet."""
        return len(self._pending)

    def take(self) -> PrivateKey:
        """A prefetched key if one was started (the first to finish), else a key generated now."""
        if not self._pending:
            return generate_key(self.algorithm)
        done = [f for f in self._pending if f.done()]
        if not done:
            finished, _ = wait(self._pending, return_when=FIRST_COMPLETED)
            done = list(finished)
        future = done[0]
        self._pending.remove(future)
        return _from_der(future.result())

    def close(self) -> None:
        """Cancel what was not started and shut the worker processes down (idempotent)."""
        pool, self._pool = self._pool, None
        self._pending.clear()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
