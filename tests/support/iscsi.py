"""A real iSCSI target for tests: Debian's ``tgtd`` (tgt, userspace) on 127.0.0.1.

Each :class:`Target` runs its own ``tgtd -f`` on a free port of the loopback with a management channel
of its own (``-C N``: the socket ``/var/run/tgtd/socket.N``), so that two never clash. ``add()`` makes a
target of one LUN backed by a file in the test's scratch directory, open to 127.0.0.1 only, with CHAP
(tgt's ``incominguser``: the initiator must log in with that user and password) when asked::

    with Target(tmp_path) as tgt:
        iqn = tgt.add("data", tmp_path / "data.raw", chap=("user", "password1234"))
        ...  # <source protocol='iscsi' name='{iqn}/1'><host name='127.0.0.1' port='{tgt.port}'/>

Without tgtd on the host, :func:`require_tgtd` skips the test with the reason.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pytest

IQN_PREFIX = "iqn.2026-12.org.pyvirt.test"
LUN = 1  # tgt keeps LUN 0 for its own controller device
CONTROL_DIR = Path("/var/run/tgtd")


def require_tgtd() -> None:
    if shutil.which("tgtd") is None or shutil.which("tgtadm") is None:
        pytest.skip("no iSCSI target here: tgtd/tgtadm (Debian's tgt) is not installed")
    if os.geteuid() != 0:
        pytest.skip("tgtd needs root for its management socket under /var/run/tgtd")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _free_control_port() -> int:
    while True:
        port = random.randrange(1000, 32768)  # tgtd takes up to 32767
        if (
            not (CONTROL_DIR / f"socket.{port}").exists()
            and not (CONTROL_DIR / f"socket.{port}.lock").exists()
        ):
            return port


class Target:
    """One tgtd and the targets ``add()`` made on it; stopped and its files removed at ``close()``."""

    def __init__(self, scratch: Path) -> None:
        require_tgtd()
        self.scratch = scratch
        self.port = _free_port()
        self.control = _free_control_port()
        self.log = scratch / f"tgtd-{self.control}.log"
        self._tids = 0
        self._accounts: dict[str, str] = {}
        self._bound: set[str] = set()
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            ["tgtd", "-f", "-C", str(self.control), "--iscsi", f"portal=127.0.0.1:{self.port}"],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tgtd exited ({self.proc.returncode}): {self.log.read_text()}")
            shown = self._tgtadm("--mode", "sys", "--op", "show", check=False)
            if shown.returncode == 0 and self._listening():
                return
            time.sleep(0.1)
        raise RuntimeError(f"tgtd not ready on 127.0.0.1:{self.port}: {self.log.read_text()}")

    def _listening(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def _tgtadm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["tgtadm", "-C", str(self.control), "--lld", "iscsi", *args]
        done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")
        return done

    def add(
        self, name: str, backing: Path, *, chap: tuple[str, str] | None = None, product: str | None = None
    ) -> str:
        """A target named ``IQN_PREFIX:name`` whose LUN 1 is ``backing`` (a file), open to 127.0.0.1,
        with CHAP for ``chap`` = (user, password), its INQUIRY product id ``product`` (else tgt's
        VIRTUAL-DISK); returns its IQN."""
        self._tids += 1
        tid, iqn = str(self._tids), f"{IQN_PREFIX}:{name}"
        self._tgtadm("--mode", "target", "--op", "new", "--tid", tid, "--targetname", iqn)
        self._tgtadm(
            "--mode",
            "logicalunit",
            "--op",
            "new",
            "--tid",
            tid,
            "--lun",
            str(LUN),
            "--backing-store",
            str(backing),
        )
        if product is not None:
            params = f"product_id={product}"
            self._tgtadm(
                "--mode", "logicalunit", "--op", "update", "--tid", tid, "--lun", str(LUN), "--params", params
            )
        self._tgtadm("--mode", "target", "--op", "bind", "--tid", tid, "--initiator-address", "127.0.0.1")
        if chap is not None:
            user, password = chap
            if self._accounts.setdefault(user, password) != password:
                raise ValueError(f"CHAP user {user} has another password on this tgtd")
            if user not in self._bound:  # an account is tgtd's, each target binds it
                self._tgtadm("--mode", "account", "--op", "new", "--user", user, "--password", password)
                self._bound.add(user)
            self._tgtadm("--mode", "account", "--op", "bind", "--tid", tid, "--user", user)
        return iqn

    def close(self) -> None:
        if self.proc.poll() is None:  # tgtd ignores SIGTERM: its targets go, then it is told to end
            for tid in range(1, self._tids + 1):
                self._tgtadm("--mode", "target", "--op", "delete", "--force", "--tid", str(tid), check=False)
            self._tgtadm("--mode", "sys", "--op", "delete", "--force", check=False)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log_file.close()
        for leftover in (f"socket.{self.control}", f"socket.{self.control}.lock"):
            with contextlib.suppress(FileNotFoundError):
                (CONTROL_DIR / leftover).unlink()

    def __enter__(self) -> Target:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
