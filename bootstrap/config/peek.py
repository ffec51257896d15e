"""What a config file can decide, read from its text before it is loaded (no YAML, no models).

``init`` generates its keys in parallel; starting them while the config is still being loaded saves a
few tenths of a second, but only keys of the right algorithm are any use. A file whose text never
names ``encryptionAlgorithm`` cannot choose one (no flag chooses it either), so the default holds.
The answer is a hint: the key source checks the algorithm again once the config is loaded.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_FIELD = b"encryptionAlgorithm"
# A double-quoted YAML key may spell the field with escapes ("encryption\x41lgorithm"): a file with
# any backslash is assumed to choose.
_ESCAPE = b"\\"
# A real config is a few kilobytes; the loader refuses a larger file, so /dev/zero or a huge file
# cannot exhaust memory (and a field beyond the limit cannot matter here).
MAX_CONFIG_BYTES = 1 << 20


def may_choose_key_algorithm(path: Path) -> bool:
    """False only when the file at ``path`` certainly leaves the key algorithm at its default; a file
    that cannot be read says True (the loader reports why, and no key is started for nothing), and so
    does anything but a regular file: reading a pipe (``--config <(...)``) would leave the loader nothing."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return True
        with open(path, "rb") as stream:
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except (OSError, ValueError):
        return True
    return _FIELD in data or _ESCAPE in data
