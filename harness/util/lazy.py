"""A value computed on first use, and sent to another process (pickled: a Ray worker) computed, so that
the receiver needs nothing its computation read (the store, its caches)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Lazy:
    """`get()` computes the value once; pickling computes it first and sends the value alone."""

    def __init__(self, compute: Callable[[], Any]):
        self._compute: Callable[[], Any] | None = compute
        self._value: Any = None

    def get(self) -> Any:
        if self._compute is not None:
            self._value, self._compute = self._compute(), None
        return self._value

    def __reduce__(self):
        return _computed, (type(self), self.get())


def _computed(cls: type[Lazy], value: Any) -> Lazy:
    lazy = cls(lambda: value)
    lazy.get()
    return lazy
