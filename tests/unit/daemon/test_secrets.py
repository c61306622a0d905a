"""The daemon's secret store: libvirt's rules for (re)defining, values root-only on disk and only
for persistent secrets, and a store reloaded from its folder."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from pyvirt.daemon.secrets import SecretStore
from pyvirt.errors import InvalidArgument, NotFound, OperationFailed

U1 = "0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f"
U2 = "11111111-2222-3333-4444-555555555555"


def xml(uuid: str, *, ephemeral: bool = False, private: bool = False, volume: str = "/v.img") -> str:
    flags = f"ephemeral='{'yes' if ephemeral else 'no'}' private='{'yes' if private else 'no'}'"
    return (
        f"<secret {flags}><uuid>{uuid}</uuid><usage type='volume'><volume>{volume}</volume></usage></secret>"
    )


def test_persistent_secret_and_value_root_only_and_reloaded(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    store = SecretStore(folder)
    secret = store.define(xml(U1, private=True))
    store.set_value(secret, b"pass\0phrase")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in (f"{U1}.xml", f"{U1}.base64"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    assert b"pass" not in (folder / f"{U1}.base64").read_bytes()  # base64, as libvirt keeps it
    again = SecretStore(folder)
    again.load()
    assert again.get(U1).private and again.value(again.get(U1)) == b"pass\0phrase"
    assert again.by_usage("volume", "/v.img").uuid == U1
    again.undefine(again.get(U1))
    assert not list(folder.iterdir())


def test_ephemeral_secrets_touch_no_file(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    store = SecretStore(folder)
    store.set_value(store.define(xml(U1, ephemeral=True)), b"x")
    assert not folder.exists() or not list(folder.iterdir())
    # persistent → ephemeral: the files go, the value stays in memory; and back again
    store.set_value(store.define(xml(U2, volume="/w.img")), b"y")
    store.define(xml(U2, ephemeral=True, volume="/w.img"))
    assert not list(folder.glob(f"{U2}*")) and store.value(store.get(U2)) == b"y"
    store.define(xml(U2, volume="/w.img"))
    assert (folder / f"{U2}.base64").exists()


def test_libvirt_redefinition_rules(tmp_path: Path) -> None:
    store = SecretStore(tmp_path)
    store.define(xml(U1, private=True))
    with pytest.raises(OperationFailed, match="cannot change private flag"):
        store.define(xml(U1))
    with pytest.raises(OperationFailed, match=r"is already defined for use with /v\.img"):
        store.define(xml(U1, private=True, volume="/other.img"))
    with pytest.raises(OperationFailed, match=f"a secret with UUID {U1} already defined for use with /v.img"):
        store.define(xml(U2))
    with pytest.raises(NotFound, match="does not have a value"):
        store.value(store.get(U1))
    with pytest.raises(NotFound, match=f"no secret with matching uuid '{U2}'"):
        store.get(U2)
    with pytest.raises(InvalidArgument, match="not a valid secret UUID"):
        store.get("nope")
    with pytest.raises(NotFound, match=r"no secret with matching usage '/w\.img'"):
        store.by_usage("volume", "/w.img")


def test_a_broken_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / f"{U1}.xml").write_text("<secret><uuid>" + U2 + "</uuid></secret>")
    (tmp_path / f"{U2}.xml").write_text(xml(U2))
    store = SecretStore(tmp_path)
    store.load()
    assert [s.uuid for s in store.list()] == [U2]
