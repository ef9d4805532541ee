"""Named registries: one per extension point (sources, distortions, previews, ...)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .errors import RankgenError


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any
    info: dict = field(default_factory=dict)


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *, aliases: tuple[str, ...] = (), **info) -> Callable:
        def decorator(obj):
            for key in (name, *aliases):
                if key in self._entries or key in self._aliases:
                    raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[name] = Entry(name, obj, dict(info))
            for alias in aliases:
                self._aliases[alias] = name
            return obj

        return decorator

    def canonical(self, name: str) -> str:
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        known = sorted(self._entries) + sorted(self._aliases)
        hint = difflib.get_close_matches(name, known, n=3)
        did_you_mean = f" Did you mean {', '.join(hint)}?" if hint else ""
        raise RankgenError(
            f"unknown {self.kind} {name!r}.{did_you_mean} Known: {', '.join(sorted(self._entries))}."
        )

    def entry(self, name: str) -> Entry:
        return self._entries[self.canonical(name)]

    def get(self, name: str) -> Any:
        return self.entry(name).obj

    def names(self) -> list[str]:
        return sorted(self._entries)

    def aliases_of(self, name: str) -> list[str]:
        return sorted(a for a, n in self._aliases.items() if n == name)

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._aliases

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)
