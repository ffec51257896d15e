"""The addons kubeadm's ``addon`` phase installs once the control plane is up: CoreDNS and kube-proxy.

Pure: each module turns a :class:`~bootstrap.config.Config` into the API objects (plain dicts) its
Jinja template renders; the phases (``bootstrap/phases/addon.py``) hand them to the applier.
"""
