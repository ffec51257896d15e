"""The key algorithms ``encryptionAlgorithm`` accepts, and kubeadm's default.

A config fact the PKI implements: kept apart from the pydantic model so that key generation can
start before the config is read (see ``RunData.start_keys_ahead``).
"""

ENCRYPTION_ALGORITHMS: tuple[str, ...] = ("RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256", "ECDSA-P384")
DEFAULT_ENCRYPTION_ALGORITHM = "RSA-2048"
