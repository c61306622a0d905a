"""``--cloud-init``'s seed, with virt-install 4.1's meanings.

No suboption is ``root-password-generate=on,disable=on``. ``root-password-generate`` makes a random
root password, expired at first login and reported once; ``root-password-file`` and
``root-ssh-key``/``clouduser-ssh-key`` carry the contents of those files (the client reads them);
``user-data``, ``meta-data`` and ``network-config`` replace the generated documents; ``disable=on``
makes cloud-init switch itself off after the first boot. The seed is a NoCloud ISO
(:func:`pyvirt.guest.cloudinit.build_seed_iso`).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from pyvirt.install import syntax


def seed_documents(options: dict[str, str], name: str) -> tuple[dict[str, str | None], str | None]:
    """(the seed's files, the generated root password or None)."""
    opts = dict(options) or {"root-password-generate": "on", "disable": "on"}
    generated: str | None = None
    config: dict[str, Any] = {}
    generate = (
        syntax.boolean("cloud-init", "root-password-generate", opts["root-password-generate"])
        if ("root-password-generate" in opts)
        else False
    )
    if generate:
        generated = secrets.token_urlsafe(12)
        password: str | None = generated
    else:
        password = opts.get("root-password-file", "").strip() or None
    if password:
        config["chpasswd"] = {"list": f"root:{password}\n", "expire": bool(generated)}
        config["ssh_pwauth"] = True
    if opts.get("root-ssh-key"):
        config["users"] = [{"name": "root", "ssh_authorized_keys": [opts["root-ssh-key"].strip()]}]
    if opts.get("clouduser-ssh-key"):
        config["ssh_authorized_keys"] = [opts["clouduser-ssh-key"].strip()]
    disable = (
        syntax.boolean("cloud-init", "disable", opts["disable"]) if "disable" in opts else bool(generate)
    )
    if disable:
        config["runcmd"] = [["sh", "-c", "touch /etc/cloud/cloud-init.disabled"]]
    user_data = opts.get("user-data") or "#cloud-config\n" + json.dumps(config, indent=2) + "\n"
    meta_data = opts.get("meta-data") or f"instance-id: {name}\nhostname: {name}\n"
    return {
        "user-data": user_data,
        "meta-data": meta_data,
        "network-config": opts.get("network-config"),
    }, generated


def write_seed(path: Path, documents: dict[str, str | None]) -> None:
    from pyvirt.guest.cloudinit import build_seed_iso

    user_data, meta_data = documents["user-data"], documents["meta-data"]
    assert user_data is not None and meta_data is not None
    build_seed_iso(path, meta_data=meta_data, user_data=user_data, network_config=documents["network-config"])
