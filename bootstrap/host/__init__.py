"""This machine: the filesystem writer, the ledger and lock, the kubelet, preflight checks and reset."""
