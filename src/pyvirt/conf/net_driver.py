"""A virtio NIC's ``<driver>`` beyond the virtio options, as libvirt 9.0 writes it.

``txmode`` (``iothread`` → QEMU's ``tx=bh``, ``timer``), ``ioeventfd``, ``event_idx``,
``rx_queue_size`` (a power of two, 256-1024), ``rss`` and ``rss_hash_report`` (``hash``) become the
``virtio-net-pci`` properties. ``name='qemu'`` is what pyvirt does anyway (QEMU's own virtio-net, no
vhost-net); ``name='vhost'`` asks for the kernel's vhost-net, which pyvirt's taps do not use, so it is
refused on a tap, and on user networking, where libvirt ignores it too, it has no effect. Multiqueue
(``queues``) is a vDPA interface's only (conf.net_vdpa); ``tx_queue_size`` (vhost-user only) is refused
by name.
"""

from __future__ import annotations

from pyvirt.conf.xmlutil import Elem, unsupported
from pyvirt.errors import UnsupportedConfig, XMLError

_ON_OFF = ("on", "off")
# XML attribute → QEMU property of virtio-net-pci
_PROPS = {
    "txmode": "tx",
    "ioeventfd": "ioeventfd",
    "event_idx": "event_idx",
    "rx_queue_size": "rx_queue_size",
    "rss": "rss",
    "rss_hash_report": "hash",
}


def parse(driver: Elem, options: dict[str, str]) -> None:
    """The NIC tuning of ``<driver>`` into ``options`` (the virtio options are read elsewhere)."""
    for name, values in (
        ("name", ("qemu", "vhost")),
        ("txmode", ("iothread", "timer")),
        ("ioeventfd", _ON_OFF),
        ("event_idx", _ON_OFF),
        ("rss", _ON_OFF),
        ("rss_hash_report", _ON_OFF),
    ):
        if (value := driver.choice(name, values)) is not None:
            options[name] = value
    if (size := driver.integer("rx_queue_size", minimum=256, maximum=1024)) is not None:
        if size & (size - 1):
            raise XMLError(f"rx_queue_size '{size}' of '{driver.path}' must be a power of two")
        options["rx_queue_size"] = str(size)
    if (count := driver.integer("queues", minimum=1, maximum=256)) is not None:
        options["queues"] = str(count)  # vdpa only (conf.net_vdpa checks)
    if (value := driver.attr("tx_queue_size")) is not None:
        raise unsupported(f"attribute 'tx_queue_size' = '{value}' of '{driver.path}' is not supported")


def device_props(options: dict[str, str], nic_type: str, model: str) -> dict[str, str]:
    """The ``virtio-net-pci`` properties; refused where they cannot take effect."""
    tuning = {k: v for k, v in options.items() if k not in ("name", "queues")}
    if tuning and model != "virtio":
        raise UnsupportedConfig(
            f"unsupported configuration: driver {', '.join(sorted(tuning))} of a '{model}' NIC"
        )
    if options.get("name") == "vhost" and nic_type != "user":
        raise UnsupportedConfig(
            "unsupported configuration: <driver name='vhost'> of an interface: pyvirt's taps do not use "
            "vhost-net (name='qemu' is what runs)"
        )
    props = {_PROPS[k]: v for k, v in tuning.items()}
    if props.get("tx") == "iothread":
        props["tx"] = "bh"
    return props
