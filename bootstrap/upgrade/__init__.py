"""Day 2: ``bootstrap upgrade plan`` and ``upgrade apply`` (version upgrades and reconfiguration).

skew: which version changes Kubernetes' version-skew policy allows; source: the stored and the
wanted configuration; plan: what would change per component and certificate; backup: the copy an
apply restores from; certsans: re-issuing the API server certificate for changed SANs; apply: the
one-component-at-a-time swap with rollback.
"""
