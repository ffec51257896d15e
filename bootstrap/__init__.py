"""kube-bootstrap: a kubeadm-style Kubernetes control-plane bootstrapper."""

__version__ = "0.1.0"
