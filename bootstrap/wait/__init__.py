"""wait-control-plane: is the control plane really up, and if not, why?

``mirrors`` keeps a live view of the mirror pods (list + watch), ``probes`` polls the health
endpoints, ``status`` judges each component (fresh, healthy, stable), ``diagnose`` explains
failures, ``progress`` shows it all, and ``waiter`` drives them under one deadline.
"""
