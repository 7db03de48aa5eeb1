"""Options of attribution methods: :class:`Option`, one entry of a method's registry record.

Each method declares its options as a tuple of :class:`Option` (name, default, kind, range);
:meth:`Option.check` validates a value before any work, with one message per mistake that
names the method, the option and the allowed range: ``TypeError`` for a wrong type (a bool or a
string for a number), ``ValueError`` for a bad value (out of range, not finite, a float for an
integer option). The widgets build their sliders and the course its tables from the same
entries.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

__all__ = ["Option", "INT_LIMIT"]

#: The largest value of an integer option whose registry entry gives no maximum (and of a
#: seed): torch's generators take 64-bit seeds.
INT_LIMIT: int = 2**63 - 1


def _number(value: float) -> str:
    if value == INT_LIMIT:
        return "2**63 - 1"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"


@dataclass(frozen=True)
class Option:
    """One option of a method, as the widgets and the course tables show it.

    ``kind`` is "int", "float", "bool", "choice" or "tensor"; numbers have an inclusive range
    ``[minimum, maximum]`` (None: unbounded); choices list their allowed values;
    ``interactive`` narrows a number's range for the widgets' sliders.
    """

    name: str
    default: Any
    kind: str
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] = field(default=())
    nullable: bool = False  # whether None is allowed
    #: ``(low, high)`` for a slider in the widgets: the range worth exploring interactively
    #: (None: derived from the default and the bounds)
    interactive: tuple[float, float] | None = None

    def allowed(self) -> str:
        """The allowed range in words: ``"from 1 to 500"``, ``"at least 0"``, ``"any"``."""
        low = self.minimum
        high = self.maximum if self.maximum is not None else (INT_LIMIT if self.kind == "int" else None)
        if low is not None and high is not None:
            return f"from {_number(low)} to {_number(high)}"
        if low is not None:
            return f"of at least {_number(low)}"
        if high is not None:
            return f"of at most {_number(high)}"
        return "of any size"

    def check(self, value: Any, method: str) -> Any:
        """Return ``value`` checked (and converted to the option's kind), or raise.

        ``TypeError`` for a wrong type (a bool or string for a number), ``ValueError`` for a
        bad value: outside the range, non-finite, a float for an integer option (``inf``,
        ``nan``, ``2.5``, even ``2.0``), a value that is not one of the choices. The message
        names the method, the option and its allowed range.
        """
        where = f"{method}: option {self.name!r}"
        if value is None:
            if self.nullable or self.default is None:
                return None
            raise ValueError(f"{where} must be given (None is not allowed)")
        if self.kind == "tensor":
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise TypeError(f"{where} must be True or False, got {value!r}")
            return value
        if self.kind == "choice":
            if isinstance(value, Tensor):
                return value
            if not any(type(value) is type(choice) and value == choice for choice in self.choices):
                shown = value if isinstance(value, (str, int, float)) else type(value).__name__
                raise ValueError(f"{where} must be one of {list(self.choices)}, got {shown!r}")
            return value
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(
                    f"{where} must be a whole number {self.allowed()}, got {type(value).__name__} {value!r}"
                )
            if not isinstance(value, numbers.Integral):  # a float: inf, nan, 2.5, even 2.0
                hint = f"; write {math.trunc(value)}" if math.isfinite(value) and float(value).is_integer() else ""
                raise ValueError(f"{where} must be a whole number (int) {self.allowed()}, got {value!r}{hint}")
            value = int(value)
            high: float | None = self.maximum if self.maximum is not None else INT_LIMIT
        else:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{where} must be a number {self.allowed()}, got {type(value).__name__}")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{where} must be a finite number {self.allowed()}, got {value!r}")
            high = self.maximum
        shown = repr(value) if isinstance(value, int) else _number(value)
        if self.minimum is not None and value < self.minimum:
            raise ValueError(f"{where} must be at least {_number(self.minimum)} ({self.allowed()}), got {shown}")
        if high is not None and value > high:
            raise ValueError(f"{where} must be at most {_number(high)} ({self.allowed()}), got {shown}")
        return value
