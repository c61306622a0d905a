"""The cloud-init NoCloud seed ISO: built with pycdlib, read back with pycdlib, isoinfo and blkid."""

from __future__ import annotations

import email
import json
import shutil
import subprocess
from pathlib import Path

import pycdlib
import pytest

from pyvirt.errors import InvalidArgument, OperationFailed
from pyvirt.guest import cloudinit


@pytest.fixture
def seed(tmp_path: Path) -> Path:
    return cloudinit.build_seed_iso(
        tmp_path / "seed.iso",
        meta_data=cloudinit.meta_data("iid-web01", "web01"),
        user_data=cloudinit.cloud_config(
            hostname="web01.lan", ssh_keys=["ssh-ed25519 AAAA k"], user="debian"
        ),
        network_config=cloudinit.network_config("52:54:00:AB:CD:EF"),
    )


def test_files_read_back_with_pycdlib(seed: Path) -> None:
    files = cloudinit.read_seed_iso(seed)
    assert set(files) == {"meta-data", "user-data", "network-config"}
    assert files["meta-data"] == 'instance-id: "iid-web01"\nlocal-hostname: "web01"\n'
    assert files["user-data"].startswith("#cloud-config\n")
    config = json.loads(files["user-data"].split("\n", 1)[1])
    assert config["hostname"] == "web01" and config["fqdn"] == "web01.lan"
    assert config["users"][1]["ssh_authorized_keys"] == ["ssh-ed25519 AAAA k"]
    net = json.loads(files["network-config"])
    assert net["ethernets"]["eth0"]["match"] == {"macaddress": "52:54:00:ab:cd:ef"}


def test_label_joliet_and_rock_ridge(seed: Path) -> None:
    iso = pycdlib.PyCdlib()
    iso.open(str(seed))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        assert iso.has_joliet() and iso.has_rock_ridge()
        joliet = sorted(c.file_identifier().decode("utf-16_be") for c in iso.list_children(joliet_path="/")
                        if c.is_file())  # fmt: skip
        assert joliet == ["meta-data", "network-config", "user-data"]
    finally:
        iso.close()


@pytest.mark.skipif(shutil.which("blkid") is None, reason="blkid not installed")
def test_blkid_sees_label_cidata(seed: Path) -> None:
    out = subprocess.run(
        ["blkid", "-o", "export", str(seed)], capture_output=True, text=True, check=True
    ).stdout
    assert "LABEL=cidata" in out.splitlines() and "TYPE=iso9660" in out.splitlines()


@pytest.mark.skipif(shutil.which("isoinfo") is None, reason="isoinfo (genisoimage) not installed")
def test_isoinfo_lists_rock_ridge_names(seed: Path) -> None:
    out = subprocess.run(
        ["isoinfo", "-R", "-f", "-i", str(seed)], capture_output=True, text=True, check=True
    ).stdout
    assert set(out.split()) == {"/meta-data", "/user-data", "/network-config"}


def test_user_data_combined_as_mime(tmp_path: Path) -> None:
    combined = cloudinit.combine_user_data(cloudinit.cloud_config(hostname="a"), "#!/bin/sh\necho hi\n")
    message = email.message_from_string(combined)
    assert message.is_multipart()
    assert [p.get_content_type() for p in message.get_payload()] == [
        "text/cloud-config",
        "text/x-shellscript",
    ]
    with pytest.raises(InvalidArgument):
        cloudinit.combine_user_data("#cloud-config\n{}", "plain text")


def test_make_seed_for_a_clone(tmp_path: Path) -> None:
    path = cloudinit.make_seed(
        tmp_path / "c.iso",
        instance_id="i-2",
        hostname="c2",
        ssh_keys=["ssh-rsa K"],
        user_data="#!/bin/sh\ntrue\n",
    )
    files = cloudinit.read_seed_iso(path)
    assert "local-hostname" in files["meta-data"] and "multipart" in files["user-data"]
    assert json.loads(files["network-config"])["ethernets"]["eth0"]["match"] == {"name": "eth0"}


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises((OperationFailed, OSError)):
        cloudinit.build_seed_iso(
            blocker / "seed.iso", meta_data="instance-id: x\n", user_data="#cloud-config\n"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.parametrize(
    ("version", "users"),
    [("", True), ("25.1.4", True), ("22.2", True), ("22.1.2", False), ("20.4.1", False), ("odd", True)],
)
def test_password_in_the_form_the_guests_cloud_init_reads(version: str, users: bool) -> None:
    config = json.loads(
        cloudinit.cloud_config(user="tester", password="s:cret", cloud_init=version).split("\n", 1)[1]
    )
    assert cloudinit.reads_chpasswd_users(version) is users
    if users:
        assert config["chpasswd"] == {
            "expire": False,
            "users": [{"name": "tester", "password": "s:cret", "type": "text"}],
        }
    else:  # cloud-init before 22.2 (Debian 11's 20.4) ignores chpasswd's users
        assert config["chpasswd"] == {"expire": False, "list": ["tester:s:cret"]}
    root = json.loads(cloudinit.cloud_config(password="pw", cloud_init=version).split("\n", 1)[1])
    assert (root["chpasswd"].get("users") or root["chpasswd"]["list"]) in (
        [{"name": "root", "password": "pw", "type": "text"}],
        ["root:pw"],
    )
