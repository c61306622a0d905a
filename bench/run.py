"""``make bench``: every benchmark under bench/, each side by side with its reference tool.

Runs bench_*.py in turn (each prints its own table); ``--only NAME`` picks one.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="run bench_NAME.py only")
    args, rest = parser.parse_known_args()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem == f"bench_{args.only}"]
    status = 0
    for script in scripts:
        print(f"== {script.stem}", flush=True)
        status |= subprocess.call([sys.executable, str(script), *rest])
    return status


if __name__ == "__main__":
    sys.exit(main())
