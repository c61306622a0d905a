"""The ``pyvirt`` command line: virsh's verbs at the top level, plus ``img`` and the guest tools."""
