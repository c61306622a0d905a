"""Configuration model: libvirt XML in and out, as plain dataclasses, with no I/O."""
