"""Replace pip's ``pyvirt`` console script in the venv with a launcher that starts in less time.

pip's script runs the interpreter with ``site``, which scans every site-packages folder and runs
their ``.pth`` hooks: about 2 ms of the 10 ms a ``pyvirt list`` costs. The launcher written here
runs ``python -S`` and appends the import path that ``site`` would have built, computed once, now
(``.pth`` hooks are not run; the package's own source folder comes first). ``scripts/setup.sh``
runs it after each install; run it again after installing other packages into the venv.

Usage: .venv/bin/python scripts/write-launchers.py
"""

from __future__ import annotations

import os
import subprocess
import sys

TEMPLATE = """\
#!{python} -S
# Written by scripts/write-launchers.py: pyvirt's client, started without site (see that script).
import sys
sys.path += {paths!r}
from pyvirt.cli.main import run
if __name__ == "__main__":
    run()
"""


def site_paths(python: str) -> list[str]:
    """The entries ``site`` adds to ``sys.path`` for this interpreter, package source first."""

    def path_of(*flags: str) -> list[str]:
        code = "import sys, json; print(json.dumps(sys.path[1:]))"
        out = subprocess.run([python, *flags, "-c", code], check=True, capture_output=True, text=True)
        import json

        return [p for p in json.loads(out.stdout) if p]

    bare = path_of("-S", "-I")
    full = path_of("-I")
    added = [p for p in full if p not in bare]
    import pyvirt

    source = os.path.dirname(os.path.dirname(os.path.abspath(pyvirt.__file__)))
    return [source, *(p for p in added if p != source)]


def main() -> int:
    bindir = os.path.dirname(sys.executable)
    python = os.path.join(bindir, "python3")
    script = os.path.join(bindir, "pyvirt")
    text = TEMPLATE.format(python=python, paths=site_paths(python))
    tmp = script + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, script)
    return 0


if __name__ == "__main__":
    sys.exit(main())
