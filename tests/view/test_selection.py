"""The table's filter, order and paging, and the keys that change them: pure, no terminal."""

from __future__ import annotations

import pytest

from view.board import SymbolLine
from view.selection import View, split_keys


def line(symbol: str, change_percent: float, age_seconds: float) -> SymbolLine:
    return SymbolLine(symbol, 100.0, "2026-11-24T15:00:00.000Z", change_percent, change_percent, "previous close",
                      100.0, "2026-11-24", 99.0, 101.0, (100.0,), "2026-11-24T15:00:00.000Z", age_seconds, False)


LINES = [line("MSFT", -2.5, 60), line("AAPL", 1.5, 30), line("IBM", 0.4, 900), line("AMZN", 1.5, 5),
         line("BRK.B", 0.0, 120)]


def symbols(view: View) -> list[str]:
    return [shown.symbol for shown in view.arrange(LINES)]


@pytest.mark.parametrize(("view", "expected"), [
    (View(), ["AAPL", "AMZN", "BRK.B", "IBM", "MSFT"]),
    (View.from_flags("symbol", reverse=True), ["MSFT", "IBM", "BRK.B", "AMZN", "AAPL"]),
    (View.from_flags("change"), ["AAPL", "AMZN", "IBM", "BRK.B", "MSFT"]),  # ties by symbol
    (View.from_flags("change", reverse=True), ["MSFT", "BRK.B", "IBM", "AAPL", "AMZN"]),
    (View.from_flags("age"), ["IBM", "BRK.B", "MSFT", "AAPL", "AMZN"]),
    (View.from_flags(pattern="a"), ["AAPL", "AMZN"]),  # a part of the symbol, any case
    (View.from_flags(pattern="*.B"), ["BRK.B"]),  # a glob
    (View.from_flags(pattern="[AI]*"), ["AAPL", "AMZN", "IBM"]),
    (View.from_flags("change", symbols=["IBM", "MSFT", "NVDA"]), ["IBM", "MSFT"]),
    (View.from_flags(pattern="zzz"), []),
])
def test_filters_and_orders(view, expected):
    assert symbols(view) == expected


def test_keys_sort_reverse_and_filter_as_typed():
    view = View()
    view = view.on_key("s", 10)
    assert (view.sort, view.descending) == ("change", True)
    assert view.on_key("s", 10).on_key("s", 10).sort == "symbol"
    assert view.on_key("r", 10).descending is False
    typing = view.on_key("/", 10)
    for key in "amq":
        typing = typing.on_key(key, 10)  # q is a letter of the pattern while typing, not quit
    assert (typing.typing, symbols(typing)) == ("amq", [])
    typing = typing.on_key("\x7f", 10)
    assert symbols(typing) == ["AMZN"]  # the table follows the pattern as it is typed
    assert typing.describe(1, 5) == "1 of 5 symbols, by CHG% ↓, filter: am▏ Enter/Esc"
    kept = typing.on_key("\r", 10)
    assert (kept.pattern, kept.typing, kept.describe(1, 5)) == ("am", None, "1 of 5 symbols, by CHG% ↓, filter 'am'")
    assert typing.on_key("\x1b", 10).filtering == ""  # Esc while typing: the pattern before
    assert kept.on_key("\x1b", 10).pattern == ""  # Esc afterwards clears it


def test_paging_stays_inside_the_rows_there_are():
    view = View()
    assert view.page(LINES, 2) == (view, LINES[:2])
    down = view.on_key("down", 2).on_key("j", 2)
    assert down.page(LINES, 2)[1] == LINES[2:4]
    assert down.on_key("page down", 2).page(LINES, 2)[1] == LINES[3:]  # the last page is full
    assert down.on_key("G", 2).page(LINES, 2)[0].offset == 3
    assert down.on_key("home", 2).offset == 0
    assert view.on_key("up", 2).offset == 0
    assert view.on_key("end", 2).page(LINES, 10) == (view, LINES)  # everything fits: no offset


def test_one_read_of_the_keyboard_is_split_into_keys():
    assert split_keys(b"j\x1b[B\x1b[6~\x1bOA /a\x1b\x7f") == ["j", "down", "page down", "up", " ", "/", "a", "\x1b",
                                                              "\x7f"]
    assert split_keys(b"\x1b[5~\x1b[H\x1b[4~") == ["page up", "home", "end"]
