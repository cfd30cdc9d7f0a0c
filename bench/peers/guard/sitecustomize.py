"""The offline guard in every Python process a guarded bench starts (`offline.install` puts this
folder on their PYTHONPATH): opto-dashboard's SQLite writer, a peer's workers."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import offline  # noqa: E402

del sys.path[0]
offline.install()
