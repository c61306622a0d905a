"""cloud-init NoCloud seed ISOs, made in Python with pycdlib (what cloud-localds makes with genisoimage).

The seed is an ISO 9660 image with the volume label ``cidata`` holding ``meta-data``, ``user-data``
and optionally ``network-config`` (and ``vendor-data``), with Joliet and Rock Ridge names so that every
reader sees the lower-case names cloud-init looks for. The text builders emit cloud-config as JSON,
which is valid YAML, so no YAML library is needed; a user's own user-data is combined with ours as a
MIME multi-part message, which cloud-init merges.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Sequence
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

from pyvirt.errors import InvalidArgument, OperationFailed
from pyvirt.store import atomic_write

VOLUME_LABEL = "cidata"
# (name cloud-init reads, ISO 9660 level-1 name) of each file a seed may hold.
_FILES = (
    ("meta-data", "/METADATA.;1"),
    ("user-data", "/USERDATA.;1"),
    ("network-config", "/NETWORK.;1"),
    ("vendor-data", "/VENDOR.;1"),
)


def meta_data(instance_id: str, hostname: str | None = None) -> str:
    """NoCloud meta-data: a new instance-id makes cloud-init treat the clone as a new machine."""
    data: dict[str, str] = {"instance-id": instance_id}
    if hostname:
        data["local-hostname"] = hostname
    return "".join(f"{key}: {json.dumps(value)}\n" for key, value in data.items())


def cloud_config(
    *,
    hostname: str | None = None,
    ssh_keys: Sequence[str] = (),
    user: str | None = None,
    password: str | None = None,
    grow_root: bool = True,
    extra: dict[str, Any] | None = None,
    cloud_init: str = "",
) -> str:
    """A ``#cloud-config`` user-data document (JSON syntax, which YAML parsers accept) for the
    cloud-init version ``cloud_init`` of the guest (``""``: unknown, taken as a current one)."""
    config: dict[str, Any] = {}
    if hostname:
        config["hostname"] = hostname.split(".", 1)[0]
        if "." in hostname:
            config["fqdn"] = hostname
        config["preserve_hostname"] = False
        config["manage_etc_hosts"] = True
    if ssh_keys and user:
        config["users"] = [
            "default",
            {
                "name": user,
                "sudo": "ALL=(ALL) NOPASSWD:ALL",
                "shell": "/bin/bash",
                "ssh_authorized_keys": list(ssh_keys),
            },
        ]
    elif ssh_keys:
        config["ssh_authorized_keys"] = list(ssh_keys)
        config["disable_root"] = False
    if password:
        if reads_chpasswd_users(cloud_init):
            config["chpasswd"] = {
                "expire": False,
                "users": [{"name": user or "root", "password": password, "type": "text"}],
            }
        else:  # the only form before 22.2, deprecated since (a warning, and status "degraded")
            config["chpasswd"] = {"expire": False, "list": [f"{user or 'root'}:{password}"]}
        config["ssh_pwauth"] = True
    if grow_root:
        config["growpart"] = {"mode": "auto", "devices": ["/"]}
        config["resize_rootfs"] = True
    if extra:
        config.update(extra)
    return "#cloud-config\n" + json.dumps(config, indent=2, sort_keys=True) + "\n"


def reads_chpasswd_users(version: str) -> bool:
    """Whether cloud-init ``version`` (e.g. ``20.4.1``; ``""`` unknown) reads ``chpasswd: users``,
    which came in 22.2: Debian 11's 20.4 reads only ``chpasswd: list`` and ignores ``users``."""
    numbers = re.match(r"(\d+)\.(\d+)", version)
    return numbers is None or (int(numbers[1]), int(numbers[2])) >= (22, 2)


def network_config(mac: str | None = None, interface: str = "eth0") -> str:
    """Network config version 2: one NIC on DHCP, matched by MAC when given."""
    nic: dict[str, Any] = {"dhcp4": True}
    if mac:
        nic["match"] = {"macaddress": mac.lower()}
        nic["set-name"] = interface
    else:
        nic["match"] = {"name": interface}
    return json.dumps({"version": 2, "ethernets": {interface: nic}}, indent=2) + "\n"


def combine_user_data(ours: str, theirs: str) -> str:
    """Both documents as one MIME multi-part user-data; cloud-init processes each part."""
    message = MIMEMultipart()
    for index, text in enumerate((ours, theirs)):
        subtype = _mime_subtype(text)
        part = MIMEText(text, subtype, "utf-8")
        part.add_header("Content-Disposition", "attachment", filename=f"part-{index}")
        message.attach(part)
    return message.as_string()


def _mime_subtype(text: str) -> str:
    first = text.lstrip().split("\n", 1)[0]
    if first.startswith("#cloud-config"):
        return "cloud-config"
    if first.startswith("#!"):
        return "x-shellscript"
    if first.startswith("#cloud-boothook"):
        return "cloud-boothook"
    if first.startswith("#include"):
        return "x-include-url"
    raise InvalidArgument(
        "user-data must start with #cloud-config, #! (a script), #cloud-boothook or #include"
    )


def build_seed_iso(
    path: str | os.PathLike[str],
    *,
    meta_data: str,
    user_data: str,
    network_config: str | None = None,
    vendor_data: str | None = None,
) -> Path:
    """Write a NoCloud seed ISO to ``path`` atomically (a failure leaves no file); return its path."""
    import pycdlib

    target = Path(path)
    contents = {"meta-data": meta_data, "user-data": user_data}
    if network_config is not None:
        contents["network-config"] = network_config
    if vendor_data is not None:
        contents["vendor-data"] = vendor_data
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=1, vol_ident=VOLUME_LABEL, joliet=3, rock_ridge="1.09")
    try:
        for name, iso_path in _FILES:
            if name not in contents:
                continue
            data = contents[name].encode()
            iso.add_fp(io.BytesIO(data), len(data), iso_path, rr_name=name, joliet_path=f"/{name}")
        image = io.BytesIO()  # a seed is a few dozen KiB
        iso.write_fp(image)
        atomic_write(target, image.getvalue(), 0o644)
    except OSError as err:
        raise OperationFailed(f"cannot write the cloud-init seed {target}: {err.strerror or err}") from err
    finally:
        iso.close()
    return target


def make_seed(
    path: str | os.PathLike[str],
    *,
    instance_id: str,
    hostname: str | None = None,
    ssh_keys: Sequence[str] = (),
    user: str | None = None,
    password: str | None = None,
    mac: str | None = None,
    user_data: str | None = None,
    cloud_init: str = "",
) -> Path:
    """The seed of a new clone: its identity, login, eth0 on DHCP, and the user's own user-data if any;
    ``cloud_init`` the guest's cloud-init version when known."""
    ours = cloud_config(
        hostname=hostname, ssh_keys=ssh_keys, user=user, password=password, cloud_init=cloud_init
    )
    return build_seed_iso(
        path,
        meta_data=meta_data(instance_id, hostname),
        user_data=combine_user_data(ours, user_data) if user_data else ours,
        network_config=network_config(mac),
    )


def read_seed_iso(path: str | os.PathLike[str]) -> dict[str, str]:
    """The files of a seed ISO by their Rock Ridge names (for tests and ``--dry-run`` output)."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        out: dict[str, str] = {}
        for name, _iso_path in _FILES:
            buf = io.BytesIO()
            try:
                iso.get_file_from_iso_fp(buf, rr_path=f"/{name}")
            except pycdlib.pycdlibexception.PyCdlibInvalidInput:
                continue
            out[name] = buf.getvalue().decode()
        return out
    finally:
        iso.close()
