"""Offline guest tools: sysprep, customize, template preparation, FUSE mounts and cloud-init seeds.

Guest file systems are read and written inside libguestfs's appliance VM (:mod:`pyvirt.guest.appliance`),
never by the host kernel.
"""
