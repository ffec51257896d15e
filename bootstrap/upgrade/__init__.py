"""Day 2: ``bootstrap upgrade plan`` and ``upgrade apply`` (version upgrades and reconfiguration).

skew: which version changes Kubernetes' version-skew policy allows; source: the stored and the
wanted configuration; podfields: what a manifest says (image, flags, volumes, probes); plan: what
would change per component and certificate; prepare: both configurations and the plan, nothing
written; backup: the copy an apply restores from; certsans: re-issuing a serving certificate for
changed SANs; swaps: the one-component-at-a-time swap with rollback.
"""
