"""Static pod manifests for the control plane: flags, pod inputs, Jinja rendering, safe writing."""
