"""Runs every benchmark in bench/ (files named bench_*.py), each in its own process, in name order.

The code under test is byte-compiled first, as an installed wheel is. Each benchmark prints its
own figures; this runner prints a header per benchmark and exits
non-zero if any of them failed. `make bench BENCH=ingest` runs only the ones whose name matches.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from common import byte_compiled

HERE = Path(__file__).parent


def main() -> int:
    wanted = os.environ.get("BENCH", "")
    scripts = [p for p in sorted(HERE.glob("bench_*.py")) if wanted in p.stem]
    if not scripts:
        print(f"no benchmark matches {wanted!r}" if wanted else "no benchmarks in bench/")
        return 1 if wanted else 0
    byte_compiled(Path(sys.executable).parent / "incidentctl")  # every benchmark starts the console script
    failed = []
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        if subprocess.call([sys.executable, str(script)]) != 0:
            failed.append(script.stem)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
