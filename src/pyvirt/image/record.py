"""A base for plain record classes: ``repr`` and ``==`` over the fields, as ``@dataclass`` gives.

The records of :mod:`pyvirt.image` are written out by hand because importing ``dataclasses`` costs
more than ten milliseconds (it loads ``inspect``, ``ast``, ``re``, ...), several times what
``pyvirt img info`` or ``pyvirt img check`` otherwise spend.
"""

from __future__ import annotations


class Record:
    """Fields are the instance attributes, in the order ``__init__`` sets them.

    Equal when of the same class with equal fields; unhashable (mutable), like a dataclass.
    """

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return vars(self) == vars(other)
