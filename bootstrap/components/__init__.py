"""Static pod manifests for the control plane: flags, pod inputs, Jinja rendering, safe writing."""

# Kept import-free: the phase tree (and so ``bootstrap --help``) needs only the names.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
