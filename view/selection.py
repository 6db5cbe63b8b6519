"""Which symbols the table shows, in what order, and from which row: the live view's keys and the flags.

Hundreds of symbols do not fit a terminal: the table is filtered (`--symbols`, and a pattern typed
after `/` or given with `--filter`), sorted (symbol, % change, age; `s` cycles, `r` reverses) and
paged (arrows, j/k, PgUp/PgDn, space, g/G). Everything here is pure: a View and a key give a View.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, replace

from view.board import SymbolLine

SORTS = ("symbol", "change", "age")
SORT_TITLES = {"symbol": "symbol", "change": "CHG%", "age": "age"}
# Biggest gain first and oldest first: what a trader scans for; r turns either round.
DESCENDING_FIRST = {"symbol": False, "change": True, "age": True}
# Escape sequences of the keys the view knows (normal and application cursor modes).
SEQUENCES = {"\x1b[A": "up", "\x1bOA": "up", "\x1b[B": "down", "\x1bOB": "down", "\x1b[5~": "page up",
             "\x1b[6~": "page down", "\x1b[H": "home", "\x1bOH": "home", "\x1b[1~": "home", "\x1b[F": "end",
             "\x1bOF": "end", "\x1b[4~": "end"}
NAVIGATION = {"up": "up", "k": "up", "down": "down", "j": "down", "page up": "page up", "b": "page up",
              "page down": "page down", " ": "page down", "f": "page down", "home": "home", "g": "home",
              "end": "end", "G": "end"}
KEYS_HINT = "s/r sort, / filter"


@dataclass(frozen=True)
class View:
    sort: str = "symbol"
    descending: bool = False
    pattern: str = ""  # case-insensitive; a glob when it has * ? or [, else a part of the symbol
    symbols: frozenset[str] | None = None  # --symbols: only these
    offset: int = 0  # the first row shown
    typing: str | None = None  # the pattern being typed after /, None when not typing

    @classmethod
    def from_flags(cls, sort: str = "symbol", reverse: bool = False, pattern: str = "",
                   symbols: Sequence[str] | None = None) -> View:
        return cls(sort, DESCENDING_FIRST[sort] != reverse, pattern, frozenset(symbols) if symbols else None)

    @property
    def filtering(self) -> str:
        """The pattern in force: the one being typed, else the one applied."""
        return self.typing if self.typing is not None else self.pattern

    def matches(self, symbol: str) -> bool:
        if self.symbols is not None and symbol not in self.symbols:
            return False
        pattern = self.filtering.upper()
        if not pattern:
            return True
        if any(mark in pattern for mark in "*?["):
            return fnmatch.fnmatchcase(symbol.upper(), pattern)
        return pattern in symbol.upper()

    def arrange(self, lines: Sequence[SymbolLine]) -> list[SymbolLine]:
        """The lines that match, in the view's order (ties by symbol)."""
        shown = sorted((line for line in lines if self.matches(line.symbol)), key=lambda line: line.symbol)
        if self.sort == "change":
            shown.sort(key=lambda line: line.change_percent, reverse=self.descending)
        elif self.sort == "age":
            shown.sort(key=lambda line: line.age_seconds, reverse=self.descending)
        elif self.descending:
            shown.reverse()
        return shown

    def page(self, lines: Sequence[SymbolLine], rows: int) -> tuple[View, list[SymbolLine]]:
        """The view with its offset kept inside the rows there are, and the rows on screen."""
        view = replace(self, offset=max(0, min(self.offset, len(lines) - rows)))
        return view, list(lines[view.offset:view.offset + rows])

    def describe(self, shown: int, total: int) -> str:
        """'20 of 500 symbols, by CHG% ↓, filter "AA"': what the table holds."""
        order = f"by {SORT_TITLES[self.sort]} {'↓' if self.descending else '↑'}"
        parts = [f"{shown} of {total} symbols", order]
        if self.typing is not None:
            parts.append(f"filter: {self.typing}▏ Enter/Esc")
        elif self.pattern:
            parts.append(f"filter {self.pattern!r}")
        return ", ".join(parts)

    def on_key(self, key: str, rows: int) -> View:
        """The view after one key (split_keys gives them one by one); `rows` is the page height."""
        if self.typing is not None:
            if key in ("\r", "\n"):
                return replace(self, pattern=self.typing, typing=None, offset=0)
            if key == "\x1b":
                return replace(self, typing=None)
            if key in ("\x7f", "\b"):
                return replace(self, typing=self.typing[:-1], offset=0)
            if key.isprintable() and len(key) == 1:
                return replace(self, typing=self.typing + key, offset=0)
            return self
        if key == "s":
            sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
            return replace(self, sort=sort, descending=DESCENDING_FIRST[sort], offset=0)
        if key == "r":
            return replace(self, descending=not self.descending, offset=0)
        if key == "/":
            return replace(self, typing="")
        if key == "\x1b" and self.pattern:
            return replace(self, pattern="", offset=0)
        move = NAVIGATION.get(key)
        steps = {"up": -1, "down": 1, "page up": -rows, "page down": rows, "home": -10**9, "end": 10**9}
        return replace(self, offset=max(0, self.offset + steps[move])) if move else self


def split_keys(typed: bytes) -> list[str]:
    """The keys in what one read of the keyboard gave: escape sequences whole, other characters one by one."""
    text = typed.decode("utf-8", "ignore")
    keys: list[str] = []
    position = 0
    while position < len(text):
        sequence = next((s for s in SEQUENCES if text.startswith(s, position)), None)
        if sequence:
            keys.append(SEQUENCES[sequence])
            position += len(sequence)
        else:
            keys.append(text[position])
            position += 1
    return keys
