"""Registries: a name in a config -> the class that implements it.

Pipelines, predictor objectives and pseudo-anomaly sources are each one class registered under a
name, so a new objective or source is one class and one registry line. Objectives and sources carry
an `Options` dataclass: the config section that selects them by `name` is validated against it, with
the same nearest-key errors as every other section. A pipeline reads the fixed sections of `Config`
it names in `sections`; one that needs a section of its own adds it to config/schema.py. The
built-in classes live in modules that are imported the first time a registry is asked for a name, so
reading a config does not import torch until it must.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pseudovad.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named classes of one kind; `builtins` are the modules that register the shipped ones."""

    def __init__(self, kind: str, builtins: tuple[str, ...]) -> None:
        self.kind = kind
        self._builtins = builtins
        self._loaded = False
        self._entries: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: `@SOURCES.register("skip_frames")`."""

        def add(cls: type[T]) -> type[T]:
            if name in self._entries and self._entries[name] is not cls:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = cls
            cls.name = name  # type: ignore[attr-defined]
            return cls

        return add

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True
            for module in self._builtins:
                importlib.import_module(module)

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def get(self, name: str, where: str = "config") -> type[T]:
        """The class registered as `name`; an unknown name is an error naming the closest one."""
        self._load()
        if name not in self._entries:
            close = difflib.get_close_matches(str(name), self._entries, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"{where}: unknown {self.kind} {name!r}; {hint}choose one of {', '.join(self.names())}")
        return self._entries[name]

    def options(self, name: str, where: str = "config") -> type[Any] | None:
        """The `Options` dataclass of the class registered as `name` (None if it takes none)."""
        return getattr(self.get(name, where), "Options", None)


PIPELINES: Registry = Registry("pipeline", ("pseudovad.training.pipelines",))
OBJECTIVES: Registry = Registry("objective", ("pseudovad.training.objectives", "pseudovad.training.not_to_predict"))
SOURCES: Registry = Registry("pseudo-anomaly source", ("pseudovad.pseudo_anomalies",))
