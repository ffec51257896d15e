"""Stacked etcd membership: the etcd v3 client (members), the learner join (learner) and the leave on reset.

Nothing here talks to Kubernetes: a joining control-plane node reaches etcd before its kubelet and API
server exist, so these modules use etcd's own API with the etcd CA and the healthcheck client cert.
"""
