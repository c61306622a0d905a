"""The driver behind ``vol-create-from``: a new volume holding another volume's content, converted,
flattened and never smaller than its input, or nothing at all."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pyvirt.conf.storage import BackingStore, VolumeDef, parse_volume
from pyvirt.errors import AlreadyExists, InvalidState, OperationFailed, XMLError
from pyvirt.image import image_info, open_image
from pyvirt.paths import Layout
from tests.unit.storage.drivers import make_driver


def write_pattern(path: Path, size: int) -> bytes:
    data = bytes(range(256)) * (size // 256)
    path.write_bytes(data)
    return data


def test_create_from_copies_content_into_the_new_format(layout: Layout) -> None:
    driver = make_driver(layout)
    driver.ensure_default()
    images = layout.images_dir
    driver.create_volume("default", VolumeDef(name="src.img", capacity=1 << 20))
    data = write_pattern(images / "src.img", 1 << 20)
    src = driver.volume("default", "src.img")

    driver.create_volume_from("default", VolumeDef(name="q.qcow2", capacity=4096, format="qcow2"), src)
    info = image_info(str(images / "q.qcow2"))
    assert info["format"] == "qcow2" and info["virtual-size"] == 1 << 20  # never below the input
    with open_image(str(images / "q.qcow2")) as img:
        assert img.read(0, 1 << 20) == data

    bigger = VolumeDef(name="big.img", capacity=4 << 20, allocation=0)
    driver.create_volume_from("default", bigger, driver.volume("default", "q.qcow2"))
    big = driver.volume("default", "big.img")
    assert big.format == "raw" and big.capacity == 4 << 20
    content = (images / "big.img").read_bytes()
    assert content[: 1 << 20] == data and content[1 << 20 :] == bytes(3 << 20)
    assert big.allocation < 2 << 20  # <allocation>0</allocation>: only the data was written

    full = driver.create_volume_from("default", VolumeDef(name="full.img", capacity=None), src)
    assert full["allocation"] >= 1 << 20  # a raw volume is allocated up to its capacity by default
    assert not [p for p in images.iterdir() if p.name.startswith(".")]


def test_create_from_flattens_a_backing_chain(layout: Layout) -> None:
    driver = make_driver(layout)
    driver.ensure_default()
    images = layout.images_dir
    driver.create_volume("default", VolumeDef(name="base.img", capacity=1 << 20))
    data = write_pattern(images / "base.img", 1 << 20)
    top = VolumeDef(
        name="top.qcow2", capacity=1 << 20, format="qcow2", backing=BackingStore("base.img", "raw")
    )
    driver.create_volume("default", top)

    copy = VolumeDef(name="flat.qcow2", format="qcow2", backing=BackingStore("/ignored", "raw"))
    driver.create_volume_from("default", copy, driver.volume("default", "top.qcow2"))
    info = image_info(str(images / "flat.qcow2"))
    assert "backing-filename" not in info
    with open_image(str(images / "flat.qcow2")) as img:
        assert img.read(0, 1 << 20) == data


def test_create_from_refusals(layout: Layout) -> None:
    driver = make_driver(layout)
    driver.ensure_default()
    driver.create_volume("default", VolumeDef(name="src.img", capacity=4096))
    src = driver.volume("default", "src.img")
    with pytest.raises(AlreadyExists, match=re.escape("storage volume name 'src.img' already in use.")):
        driver.create_volume_from("default", VolumeDef(name="src.img", capacity=1), src)
    with pytest.raises(OperationFailed, match="Not enough space"):
        driver.create_volume_from("default", VolumeDef(name="huge.img", capacity=1 << 62), src)
    with pytest.raises(InvalidState, match="busy"), driver.busy(src.path, "being uploaded to"):
        driver.create_volume_from("default", VolumeDef(name="n.img", capacity=1), src)
    assert sorted(p.name for p in layout.images_dir.iterdir()) == ["src.img"]


def test_parse_volume_without_capacity_for_create_from() -> None:
    xml = "<volume><name>n</name><target><format type='qcow2'/></target></volume>"
    with pytest.raises(XMLError, match="missing capacity element"):
        parse_volume(xml)
    vol = parse_volume(xml, require_capacity=False)
    assert (vol.name, vol.capacity, vol.format) == ("n", None, "qcow2")
