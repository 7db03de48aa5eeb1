"""Class names of a classifier, with lookup by index, by name and by name fragment."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from difflib import get_close_matches
from typing import overload

__all__ = ["ClassNames", "imagenet_class_names"]


def imagenet_class_names() -> ClassNames:
    """The 1000 ImageNet-1k class names, from torchvision's weights metadata (no download)."""
    from torchvision.models import ResNet18_Weights  # about 2 s to import: only when names are needed

    return ClassNames(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


class ClassNames(Sequence[str]):
    """An immutable list of class names: ``names[285] == "Egyptian cat"``.

    ``names.index("tabby")`` finds a class by its whole name or by a fragment of it,
    ignoring case; ``names.search("cat")`` lists every match; ``names.resolve(target)``
    turns an int, a numeric string or a name into a checked class index.
    """

    def __init__(self, names: Sequence[str]) -> None:
        names = tuple(names)
        if not names or not all(isinstance(n, str) for n in names):
            raise ValueError("class names must be a non-empty sequence of strings")
        self._names = names

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        if isinstance(index, slice):
            return self._names[index]
        if not isinstance(index, int) or isinstance(index, bool):
            raise TypeError(f"class index must be an int, got {type(index).__name__}")
        if not 0 <= index < len(self._names):
            raise IndexError(self._range_message(index))
        return self._names[index]

    def __repr__(self) -> str:
        return f"ClassNames({len(self)} classes: {self._names[0]!r}, {self._names[1]!r}, ...)"

    def _range_message(self, index: int) -> str:
        return (
            f"class index {index} is out of range: this model has {len(self)} classes, "
            f"numbered 0 to {len(self) - 1}"
        )

    def search(self, fragment: str) -> list[tuple[int, str]]:
        """Every ``(index, name)`` whose name contains ``fragment`` (ignoring case)."""
        needle = fragment.strip().casefold()
        return [(i, n) for i, n in enumerate(self._names) if needle in n.casefold()]

    def index(self, name: str, start: int = 0, stop: int | None = None) -> int:
        """The index of the class called ``name``, or whose name contains it.

        A whole-name match wins over fragments (``"tiger"`` is class 292 even though
        ``"tiger cat"`` and ``"tiger shark"`` contain it). Raises ``ValueError`` if nothing
        matches (suggesting close names) or if the fragment matches several classes (listing
        them).
        """
        if not isinstance(name, str):
            raise TypeError(f"class name must be a str, got {type(name).__name__}")
        key = name.strip().casefold()
        if not key:
            raise ValueError("class name is empty: give a class name such as 'tabby' or an index")
        span = range(start, len(self) if stop is None else stop)
        exact = [i for i in span if self._names[i].casefold() == key]
        if len(exact) == 1:
            return exact[0]
        matches = exact or [i for i in span if key in self._names[i].casefold()]
        if not matches:
            words = [w for n in self._names for w in (n.casefold(), *re.split(r"[\s,\-']+", n.casefold()))]
            close = get_close_matches(key, words, n=5, cutoff=0.75)
            suggestions = sorted(
                {self._names[i] for i in range(len(self)) for w in close if w in self._names[i].casefold()}
            )
            hint = f" Close names: {', '.join(map(repr, suggestions[:5]))}." if suggestions else ""
            raise ValueError(
                f"no class is called {name!r} or contains it.{hint} "
                "Use names.search('...') to browse, or give the class index."
            )
        if len(matches) > 1:
            listed = ", ".join(f"{i} {self._names[i]!r}" for i in matches[:10])
            more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
            raise ValueError(
                f"{name!r} matches {len(matches)} classes: {listed}{more}. "
                "Give a longer part of the name, or the class index."
            )
        return matches[0]

    def resolve(self, target: int | str) -> int:
        """A checked class index from an index, a numeric string or a (fragment of a) name."""
        if isinstance(target, bool):
            raise TypeError("class must be an int index or a str name, got bool")
        if hasattr(target, "__index__") and not isinstance(target, str):
            index = target.__index__()
            if not 0 <= index < len(self):
                raise ValueError(self._range_message(index))
            return index
        if isinstance(target, str):
            if target.strip().lstrip("-").isdigit():
                return self.resolve(int(target))
            return self.index(target)
        raise TypeError(f"class must be an int index or a str name, got {type(target).__name__}")
