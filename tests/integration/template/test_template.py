"""Templates and clones on a real daemon: import/list/delete/clone with the busybox test guest's disk,
then (slow) a Debian 12 template built from Debian's packages, two linked clones booted under TCG and
checked through their serial consoles: hostnames set by cloud-init, root grown to the clone's disk
size, distinct machine-ids and SSH host keys, the injected key in the user's authorized_keys. One is
made by ``clone`` (root's password from its --user-data), the other by ``launch --password`` (the
login on its console is with that password: the seed's chpasswd in the form the template's
cloud-init reads).

The debootstrap tree is cached in ``<repo>/.cache/templates`` (``PYVIRT_TEMPLATE_CACHE``), so only the
first run pays for it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import Console, Daemon, running_daemon
from tests.support.guest import REPO, guest_artifacts

CACHE = Path(os.environ.get("PYVIRT_TEMPLATE_CACHE") or REPO / ".cache" / "templates")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq3bm9ZbP1oW1Vr1Ux1rWfQqkYt0n0yS1k8m4b9cXyZ pyvirt-test@host"
ROOT_PASSWORD = "pyvirt-test"
LAUNCH_PASSWORD = "pyvirt:launch"  # a colon: chpasswd's old list form splits on the first one only
USER_DATA = f"""#cloud-config
chpasswd:
  expire: false
  users:
    - {{name: root, password: {ROOT_PASSWORD}, type: text}}
"""


@pytest.fixture(scope="module")
def daemon() -> Iterator[Daemon]:
    with running_daemon(extra_env={"PYVIRT_TEMPLATE_CACHE": str(CACHE)}) as d:
        yield d


def _pool_files(d: Daemon) -> list[str]:
    return sorted(p.name for p in d.pool_dir.iterdir())


@pytest.fixture(scope="module")
def busybox(daemon: Daemon) -> str:
    daemon.cli("template", "import", "--os", "busybox", str(guest_artifacts().disk), "bb").ok()
    return "bb"


def test_import_and_list(daemon: Daemon, busybox: str) -> None:
    out = daemon.cli("template", "list").ok().out
    assert re.search(r"^ bb\s+busybox\s+\d+ MiB\s+\S+Z\s+bb\.template\.qcow2\s+-$", out, re.M), out
    vol = daemon.pool_dir / "bb.template.qcow2"
    assert vol.stat().st_mode & 0o777 == 0o444
    # The sidecar is hidden: vol-list shows the template's volume only.
    assert "template.json" not in daemon.cli("vol-list", "default").ok().out
    again = daemon.cli("template", "import", str(guest_artifacts().disk), "bb")
    assert again.rc == 1 and "template bb exists already" in again.err
    missing = daemon.cli("template", "import", "/nonexistent.qcow2", "bb2")
    assert missing.rc == 1 and "no such file" in missing.err


def test_linked_clone_defines_overlay_seed_and_new_identity(daemon: Daemon, busybox: str) -> None:
    conn = daemon.connect()
    daemon.cli(
        "clone", "--original", busybox, "--name", "c1", "--network", "user", "--disk-size", "1G",
        "--memory", "128", "--hostname", "c1.example",
    ).ok()  # fmt: skip
    vol = conn.pool("default").volume("c1.qcow2").info()
    assert vol["backing"] == str(daemon.pool_dir / "bb.template.qcow2")
    assert vol["capacity"] == 1 << 30 and vol["format"] == "qcow2"
    xml = conn.domain("c1").xml()
    assert "<source pool='default' volume='c1.qcow2'/>" in xml
    assert "<source pool='default' volume='c1-seed.iso'/>" in xml
    from pyvirt.guest.cloudinit import read_seed_iso

    seed = read_seed_iso(daemon.pool_dir / "c1-seed.iso")
    assert '"hostname": "c1"' in seed["user-data"] and '"fqdn": "c1.example"' in seed["user-data"]
    mac = re.search(r"<mac address='([0-9a-f:]+)'/>", xml)
    assert mac and mac.group(1) in seed["network-config"]
    daemon.cli("clone", "--original", busybox, "--name", "c2", "--network", "none").ok()
    assert conn.domain("c1").info()["uuid"] != conn.domain("c2").info()["uuid"]
    assert "<interface" not in conn.domain("c2").xml()


def test_password_seeded_in_the_form_the_templates_cloud_init_reads(daemon: Daemon, busybox: str) -> None:
    import json

    from pyvirt.guest.cloudinit import read_seed_iso

    daemon.cli("template", "import", str(guest_artifacts().disk), "old-ci").ok()
    # What a debian-11 build records: the cloud-init version its tree holds (20.4, before chpasswd's users).
    sidecar = daemon.pool_dir / ".old-ci.template.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "cloud_init": "20.4.1"}))
    listed = json.loads(daemon.cli("template", "list", "--json").ok().out)
    assert {t["name"]: t["cloud_init"] for t in listed if t["name"] in ("old-ci", busybox)} == {
        "old-ci": "20.4.1",
        busybox: "",
    }
    for original, name in ((busybox, "pw-new"), ("old-ci", "pw-old")):  # launch: clone's has no --password
        launch = ("launch", "-q", original, name, "--network", "none", "--memory", "64M", "--password", "a:b")
        daemon.cli(*launch).ok()
        daemon.cli("destroy", name).ok()
    new = json.loads(read_seed_iso(daemon.pool_dir / "pw-new-seed.iso")["user-data"].split("\n", 1)[1])
    old = json.loads(read_seed_iso(daemon.pool_dir / "pw-old-seed.iso")["user-data"].split("\n", 1)[1])
    assert new["chpasswd"] == {
        "expire": False,
        "users": [{"name": "root", "password": "a:b", "type": "text"}],
    }
    assert old["chpasswd"] == {"expire": False, "list": ["root:a:b"]}


def test_clone_onto_existing_name_creates_nothing(daemon: Daemon, busybox: str) -> None:
    daemon.cli("clone", "--original", busybox, "--name", "dup", "--network", "none").ok()
    before = _pool_files(daemon)
    again = daemon.cli("clone", "--original", busybox, "--name", "dup", "--network", "none")
    assert again.rc == 1 and "domain dup exists already" in again.err
    # A stray volume with the clone's disk name: refused before anything is made.
    (daemon.pool_dir / "stray.qcow2").write_bytes(b"")
    stray = daemon.cli("clone", "--original", busybox, "--name", "stray", "--network", "none")
    assert stray.rc == 1 and "volume stray.qcow2 exists already" in stray.err
    assert _pool_files(daemon) == sorted([*before, "stray.qcow2"])
    assert "stray" not in daemon.cli("list", "--all", "--name").out.split()
    (daemon.pool_dir / "stray.qcow2").unlink()
    unknown = daemon.cli("clone", "--original", "nosuch", "--name", "x1")
    assert unknown.rc == 1 and "no template or domain named nosuch" in unknown.err
    small = daemon.cli("clone", "--original", busybox, "--name", "x2", "--disk-size", "1M")
    assert small.rc == 1 and "disks can only grow" in small.err
    assert _pool_files(daemon) == before


def test_clone_of_a_domain_full_and_refused_while_running(daemon: Daemon, busybox: str) -> None:
    from tests.support.guest import domain_xml

    art = guest_artifacts()
    conn = daemon.connect()
    daemon.cli("clone", "--original", busybox, "--name", "src", "--network", "none").ok()
    # Boot it as the busybox guest boots (direct kernel): the clone's disk is the overlay volume.
    disk = daemon.pool_dir / "src.qcow2"
    conn.domain("src").undefine()
    conn.define_xml(domain_xml("src", disk=disk, artifacts=art))
    conn.domain("src").start()
    running = daemon.cli("clone", "--original", "src", "--name", "src2")
    assert running.rc == 1 and "domain src is running" in running.err and "shut it down" in running.err
    assert not (daemon.pool_dir / "src2.qcow2").exists()
    conn.domain("src").destroy()
    daemon.wait_state("src", "shut off")
    out = daemon.cli("clone", "--original", "src", "--name", "src2", "--network", "none").ok().out
    assert "(full," in out
    vol = conn.pool("default").volume("src2.qcow2").info()
    assert vol["backing"] is None  # flattened: independent of the template
    xml = conn.domain("src2").xml()
    assert "volume='src2.qcow2'" in xml and "volume='src2-seed.iso'" in xml
    assert conn.domain("src2").info()["uuid"] != conn.domain("src").info()["uuid"]


def test_template_delete_refused_while_clones_depend(daemon: Daemon) -> None:
    daemon.cli("template", "import", str(guest_artifacts().disk), "gone").ok()
    daemon.cli("clone", "--original", "gone", "--name", "dep", "--network", "none").ok()
    refused = daemon.cli("template", "delete", "gone")
    assert refused.rc == 1 and "template gone is in use" in refused.err and "domain dep" in refused.err
    assert (daemon.pool_dir / "gone.template.qcow2").exists()
    daemon.cli("undefine", "--remove-all-storage", "dep").ok()
    # The seed (a CD-ROM) outlives undefine --remove-all-storage; a new clone of the name replaces it.
    assert (daemon.pool_dir / "dep-seed.iso").exists()
    daemon.cli("clone", "--original", "gone", "--name", "dep", "--network", "none").ok()
    assert daemon.cli("template", "delete", "gone").rc == 1
    daemon.cli("undefine", "--remove-all-storage", "dep").ok()
    daemon.cli("template", "delete", "gone").ok()
    assert not (daemon.pool_dir / "gone.template.qcow2").exists()
    assert not (daemon.pool_dir / ".gone.template.json").exists()
    assert "gone" not in daemon.cli("template", "list").ok().out
    missing = daemon.cli("template", "delete", "gone")
    assert missing.rc == 1 and "template gone not found" in missing.err


def test_build_with_unknown_os_leaves_nothing(daemon: Daemon) -> None:
    before = _pool_files(daemon)
    bad = daemon.cli("template", "build", "--os", "bogus-1", "t")
    assert bad.rc == 1 and "unknown --os 'bogus-1'" in bad.err and "debian-12" in bad.err
    assert _pool_files(daemon) == before


# --- Debian 12 built from Debian's packages, cloned twice, booted under TCG -----------------------

needs_build_tools = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("debootstrap", "sfdisk", "mkfs.ext4")),
    reason="template build needs root, debootstrap, sfdisk and mkfs.ext4",
)


TEMPLATE_POOL = "tpl"


@pytest.fixture(scope="module")
def tpl_folder() -> Iterator[Path]:
    """The ``tpl`` pool's folder: one QEMU's unprivileged user can traverse, as a host's image
    directories are (pytest's own, under /tmp/pytest-of-USER, mode 0700, would have every clone's disk
    refused at start)."""
    path = Path(tempfile.mkdtemp(prefix="pvt-tpl-", dir="/tmp"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def debian(daemon: Daemon, tpl_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """deb12, built in pool ``tpl`` with the tree cached where --cache-dir says (not where the
    environment's PYVIRT_TEMPLATE_CACHE points), through the URI -c names (not the environment's)."""
    folder = tpl_folder
    daemon.cli("pool-create-as", TEMPLATE_POOL, "dir", "--target", str(folder), "--build").ok()
    decoy = tmp_path_factory.mktemp("decoy-cache")
    env = {
        "PYVIRT_TEMPLATE_CACHE": str(decoy),
        "PYVIRT_DEFAULT_URI": "qemu+unix:///system?socket=/nonexistent",
    }
    started = time.monotonic()
    result = daemon.cli(
        "template", "build", "--os", "debian-12", "--size", "2G", "--cache-dir", str(CACHE),
        "--pool", TEMPLATE_POOL, "-c", f"qemu+unix:///system?socket={daemon.socket}", "--json", "deb12",
        timeout=1500, env=env,
    )  # fmt: skip
    print(f"template build: {time.monotonic() - started:.0f} s\n{result.err}")
    tmpl = json.loads(result.ok().out)
    assert result.err == "", "--json: the data alone, no progress lines"
    assert tmpl["name"] == "deb12" and tmpl["os"] == "debian-12"
    assert tmpl["path"] == str(folder / "deb12.template.qcow2") and Path(tmpl["path"]).is_file()
    assert list(decoy.iterdir()) == [] and list((CACHE / "debootstrap").glob("bookworm-*"))
    return "deb12"


@pytest.mark.slow
@pytest.mark.timeout(1800)  # its set-up builds the template: a fresh debootstrap alone takes minutes
@needs_build_tools
def test_build_debian_template(daemon: Daemon, debian: str) -> None:
    out = daemon.cli("template", "list", "--pool", TEMPLATE_POOL).ok().out
    assert re.search(r"^ deb12\s+debian-12\s+2 GiB\s", out, re.M), out
    assert "deb12" not in daemon.cli("template", "list").ok().out
    vol = daemon.connect().pool(TEMPLATE_POOL).volume("deb12.template.qcow2").info()
    assert vol["format"] == "qcow2" and vol["backing"] is None and vol["capacity"] == 2 << 30
    # No staging folder left behind.
    folder = Path(daemon.connect().pool(TEMPLATE_POOL).info()["path"])
    assert not [p for p in folder.iterdir() if p.name.endswith(".build")]


@pytest.mark.slow
@needs_build_tools
def test_build_failing_part_way_leaves_no_volume(daemon: Daemon, debian: str) -> None:
    # The cached tree does not fit in 300M: mkfs fails after the disk was made and partitioned. -q: the
    # error alone on stderr, no progress lines.
    before = _pool_files(daemon)
    small = daemon.cli("template", "build", "-q", "--os", "debian-12", "--size", "300M", "tiny", timeout=600)
    assert small.rc == 1 and "is --size big enough" in small.err, small.err
    assert small.err.startswith("error: ") and not re.search(r"^\[\s*\d+\.\d\]", small.err, re.M), small.err
    assert _pool_files(daemon) == before
    assert "tiny" not in daemon.cli("template", "list").ok().out


def _login(console: Console, user: str = "root", password: str = ROOT_PASSWORD) -> None:
    """Log in on a Debian guest's serial console once cloud-init is done (also test_debian_releases')."""
    # Generous: on a 2-core machine other suites load, a TCG guest's getty can take minutes.
    console.expect(r"Cloud-init v\. \S+ finished at", timeout=900)
    # Enter until getty answers: one sent while the console is busy with the journal can go unanswered.
    for _ in range(20):
        console.send("\n")
        try:
            console.expect(r"login: ", timeout=30)
            break
        except AssertionError:
            continue
    else:
        raise AssertionError("no login prompt on the serial console in 10 minutes")
    console.send(user + "\n")
    console.expect(r"Password: ", timeout=300)
    console.send(password + "\n")
    console.expect(rf"{user}@\S+:~[#$] ", timeout=300)


def _run(console: Console, command: str, timeout: float = 60) -> str:
    """A command's output: between two markers, whatever bash adds around it (echo, bracketed paste)."""
    marker = f"M{time.monotonic_ns()}"
    console.send(f"echo {marker}-begin; {command}; echo {marker}-end\n")
    match = console.expect(f"(?s){marker}-begin\r?\n(.*?){marker}-end", timeout)
    return match.group(1).decode(errors="replace").strip()


@pytest.mark.slow
@pytest.mark.timeout(1500)  # two Debian boots under TCG: 680 s on a loaded 2-core machine
@needs_build_tools
def test_linked_clones_boot_with_their_own_identity(daemon: Daemon, debian: str, tmp_path: Path) -> None:
    key = tmp_path / "id_test.pub"
    key.write_text(KEY + "\n")
    user_data = tmp_path / "user-data"
    user_data.write_text(USER_DATA)
    sizes = {"vm-a": None, "vm-b": "4G"}
    conn = daemon.connect()
    # vm-a: clone, then start; root's password from the --user-data
    daemon.cli(
        "clone", "--original", debian, "--pool", TEMPLATE_POOL, "--name", "vm-a", "--linked", "--memory",
        "512M", "--vcpus", "1", "--network", "user", "--ssh-key", str(key), "--user", "tester",
        "--user-data", str(user_data),
    ).ok()  # fmt: skip
    conn.domain("vm-a").start()
    # vm-b: launch (clone, seed, start in one): the user's password from --password, nothing else
    daemon.cli(
        "launch", debian, "vm-b", "--pool", TEMPLATE_POOL, "--memory", "512M", "--vcpus", "1",
        "--network", "user", "--ssh-key", str(key), "--user", "tester", "--password", LAUNCH_PASSWORD,
        "--disk-size", "4G",
    ).ok()  # fmt: skip
    for name in sizes:
        backing = conn.pool(TEMPLATE_POOL).volume(f"{name}.qcow2").info()["backing"]
        assert backing.endswith("deb12.template.qcow2")
    consoles = {name: Console(daemon, name) for name in sizes}
    logins = {"vm-a": ("root", ROOT_PASSWORD), "vm-b": ("tester", LAUNCH_PASSWORD)}
    facts: dict[str, dict[str, str]] = {}
    try:
        for name, console in consoles.items():
            _login(console, *logins[name])
            facts[name] = {
                "hostname": _run(console, "hostname"),
                "root_bytes": _run(console, "df -B1 --output=size / | tail -1"),
                "machine_id": _run(console, "cat /etc/machine-id"),
                "host_key": _run(console, "cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub"),
                "keys": _run(console, "cat /home/tester/.ssh/authorized_keys"),
                "status": _run(console, "cloud-init status"),
            }
            print(name, facts[name])
    finally:
        for console in consoles.values():
            console.close()
        for name in sizes:  # a fresh connection: the daemon closes ones idle for minutes
            daemon.cli("destroy", name)
    a, b = facts["vm-a"], facts["vm-b"]
    assert (a["hostname"], b["hostname"]) == ("vm-a", "vm-b")
    assert "status: done" in a["status"] and "status: done" in b["status"]
    assert int(a["root_bytes"]) < 2 << 30 < (3 << 30) < int(b["root_bytes"]) < 4 << 30
    assert re.fullmatch(r"[0-9a-f]{32}", a["machine_id"]) and a["machine_id"] != b["machine_id"]
    assert a["host_key"] and a["host_key"] != b["host_key"]
    assert KEY in a["keys"].splitlines() and KEY in b["keys"].splitlines()


def test_import_and_clone_options_quiet_json_pool(daemon: Daemon, tmp_path: Path) -> None:
    """template import and clone: --pool puts the template and the clone in another pool; -q drops the
    progress lines from stderr; --json prints the result as data instead of the sentence."""
    folder = tmp_path / "other"
    daemon.cli("pool-create-as", "other", "dir", "--target", str(folder), "--build").ok()
    disk = str(guest_artifacts().disk)
    loud = daemon.cli("template", "import", "--os", "busybox", "--pool", "other", disk, "ob").ok()
    assert "Copying" in loud.err and loud.out.startswith("Template ob imported: ")
    assert (folder / "ob.template.qcow2").is_file() and not (daemon.pool_dir / "ob.template.qcow2").exists()
    quiet = daemon.cli("template", "import", "-q", "--pool", "other", disk, "oq").ok()
    assert quiet.err == "" and quiet.out.startswith("Template oq imported: ")
    as_json = daemon.cli("template", "import", "--json", "--pool", "other", disk, "oj").ok()
    tmpl = json.loads(as_json.out)
    assert tmpl["name"] == "oj" and tmpl["path"] == str(folder / "oj.template.qcow2") and as_json.err == ""

    quiet = daemon.cli(
        "clone", "-q", "--pool", "other", "--original", "ob", "--name", "oc1", "--network", "none"
    )
    assert quiet.ok().err == "" and quiet.out.startswith("Domain oc1 cloned from template ob (linked")
    loud = daemon.cli(
        "clone", "--pool", "other", "--original", "ob", "--name", "oc2", "--network", "none"
    ).ok()
    assert loud.err != ""
    result = json.loads(
        daemon.cli(
            "clone", "--json", "--pool", "other", "--original", "ob", "--name", "oc3", "--network", "none"
        )
        .ok()
        .out
    )
    assert result["name"] == "oc3" and result["linked"] and result["kind"] == "template"
    assert (folder / "oc3.qcow2").is_file()
    for name in ("oc1", "oc2", "oc3"):
        daemon.cli("undefine", name, "--remove-all-storage").ok()
    for name in ("ob", "oq", "oj"):
        daemon.cli("template", "delete", "--pool", "other", name).ok()
    daemon.cli("pool-destroy", "other").ok()
