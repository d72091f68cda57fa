"""What every operator's ``<Op>Params`` dataclass shares: text and dict round trips.

Operators declare a frozen dataclass that inherits :class:`ParamsBase`. Its fields may be
``int``, ``float``, ``bool``, ``str``, :class:`~golden.formats.FixFormat` or an ``enum.Enum``;
this module converts them to and from the ``key=value,key=value`` text used on the command line
(``make verilog OP=gelu PARAMS="segments=8,slope_mode=mult"``) and the JSON-able dicts that
carry a configuration into a cocotb testbench.
"""

from __future__ import annotations

import dataclasses
import enum
import typing

from .formats import FixFormat

__all__ = ["ParamsBase", "Workload", "check_int", "check_enum", "check_fix"]


@dataclasses.dataclass(frozen=True)
class Workload:
    """Realistic input for one operator: what the energy estimate streams through a design.

    Members
    -------
    cases : list or ndarray
        Cases in the operator's interface form (see :mod:`hwgen.registry`): a code array for
        an element stream, a list of rows, a list of ``(w, a, w_is_posit)`` dot products.
    what : str
        One line describing the data, for the report.
    row_params : dict or None
        For an operator with a parameter port, the per-channel vectors loaded first.
    """

    cases: object
    what: str
    row_params: dict | None = None


class ParamsBase:
    """Mixin for frozen ``@dataclass`` parameter sets."""

    #: Operator name used in error messages and module names; set by each subclass.
    op: typing.ClassVar[str] = "op"

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def _field_types(cls) -> dict[str, type]:
        hints = typing.get_type_hints(cls)
        return {name: hints[name] for name in cls.field_names()}

    def to_dict(self) -> dict[str, object]:
        """Fields as JSON-able values (formats as ``s6.10`` text, enums as their values)."""
        out = {}
        for name in self.field_names():
            value = getattr(self, name)
            if isinstance(value, FixFormat):
                value = str(value)
            elif isinstance(value, enum.Enum):
                value = value.value
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, object]):
        """Inverse of :meth:`to_dict`; also accepts text values for every field."""
        types = cls._field_types()
        kwargs = {}
        for name, value in data.items():
            if name not in types:
                raise ValueError(f"unknown {cls.op} parameter {name!r}; known: {', '.join(types)}")
            kwargs[name] = _convert(cls.op, name, types[name], value)
        return cls(**kwargs)

    @classmethod
    def parse(cls, text: str):
        """Read ``key=value,key=value`` (commas or spaces between pairs); empty means defaults.

        >>> from golden.gelu import GeluParams
        >>> GeluParams.parse("segments=8, slope_mode=mult").segments
        8
        """
        data = {}
        for item in text.replace(",", " ").split():
            key, sep, value = item.partition("=")
            if not sep or not key or not value:
                raise ValueError(
                    f"cannot read {item!r} as a {cls.op} parameter; write name=value "
                    f"(known names: {', '.join(cls.field_names())})"
                )
            data[key.strip()] = value.strip()
        return cls.from_dict(data)

    def changed_fields(self) -> dict[str, object]:
        """Fields whose value differs from the default, as JSON-able values."""
        default = type(self)().to_dict()
        return {k: v for k, v in self.to_dict().items() if default[k] != v}


def _convert(op: str, name: str, kind: type, value: object):
    if not isinstance(value, str):
        if kind is FixFormat and isinstance(value, (list, tuple)):
            return FixFormat(*value)
        return value
    try:
        if kind is FixFormat:
            return FixFormat.parse(value)
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return kind(value)
        if kind is bool:
            if value.lower() in ("1", "true", "yes"):
                return True
            if value.lower() in ("0", "false", "no"):
                return False
            raise ValueError
        if kind is int:
            return int(value, 0) if value[:2].lower() in ("0x", "0b", "0o") else int(value)
        if kind is float:
            return float(value)
        return value
    except ValueError as exc:
        allowed = ""
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            allowed = f"; allowed: {', '.join(m.value for m in kind)}"
        elif kind is FixFormat:
            allowed = f" ({exc})"
        raise ValueError(
            f"{op} parameter {name} cannot be {value!r}: expected {_kind_name(kind)}{allowed}"
        ) from None


def _kind_name(kind: type) -> str:
    if kind is FixFormat:
        return "a fixed-point format like s6.10"
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return f"one of the {kind.__name__} values"
    return {int: "an integer", float: "a number", bool: "true or false"}.get(
        kind, f"a {kind.__name__}"
    )


# -- validation helpers for __post_init__ -------------------------------------------------------


def check_int(op: str, name: str, value, lo: int, hi: int) -> None:
    """Raise unless ``value`` is an int in ``[lo, hi]``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{op} {name} must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{op} {name} must be {lo} to {hi}, not {value!r}")


def check_fix(op: str, name: str, value, *, signed: bool | None = None, why: str = ""):
    """Raise unless ``value`` is a :class:`FixFormat` (of the required signedness)."""
    if not isinstance(value, FixFormat):
        raise TypeError(f"{op} {name} must be a FixFormat (e.g. FixFormat(6, 10)), not {value!r}")
    if signed is not None and value.signed != signed:
        raise ValueError(
            f"{op} {name} must be {'signed' if signed else 'unsigned'}{why}, not {value}"
        )


def check_enum(op: str, name: str, value, kind: type[enum.Enum]):
    """Return ``value`` as a member of ``kind`` (accepting its text value) or raise."""
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ValueError(f"{op} {name} must be one of {allowed}, not {value!r}") from None
