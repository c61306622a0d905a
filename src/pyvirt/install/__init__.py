"""``pyvirt install``: virt-install 4.1's options and meanings, the XML it builds, the media it reads.

:mod:`.syntax` splits virt-install's ``key=value,...`` option values (pure; the CLI uses it),
:mod:`.osinfo` gives an OS's facts from osinfo-db (through libosinfo), :mod:`.media` finds an
installer's kernel and initrd in a tree or an ISO, :mod:`.build` turns a request and those facts into
the install-time and final domain XML. The daemon's action is :mod:`pyvirt.daemon.installs`.
"""
