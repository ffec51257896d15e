"""Static pod manifests for the control plane: the component spec table, flags, pod inputs, Jinja
rendering, reading a static pod back, safe writing."""

# The spec table imports only the standard library: the phase tree (and so ``bootstrap phase --help``)
# can take the names from it.
from bootstrap.components.spec import SPECS

COMPONENTS = tuple(SPECS)
