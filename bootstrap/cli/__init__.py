"""The command line: the click group, its options and the kubeadm flag table, one module per family."""
