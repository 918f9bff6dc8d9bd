"""The test suite. In a virtualenv, its compiled modules (and pytest's rewritten ones) are cached
even where PYTHONDONTWRITEBYTECODE is set: in the virtualenv's pycache/, not beside the sources.
Without the cache every xdist worker compiles the suite and incidentctl again (about 4 s of CPU each)."""

import sys
from pathlib import Path

if sys.dont_write_bytecode and sys.pycache_prefix is None and sys.prefix != sys.base_prefix:
    sys.pycache_prefix = str(Path(sys.prefix) / "pycache")
    sys.dont_write_bytecode = False
