"""A full-screen view that redraws in place and always gives the terminal back as it found it.

The view runs on the alternate screen with the cursor hidden and the keyboard in cbreak mode (so
`q` quits without Enter); leaving, by `q`, Ctrl-C, SIGTERM or SIGHUP, restores all three.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import sys
import termios
import time
import tty
from types import FrameType, TracebackType
from typing import TextIO

from view.board_text import Line, as_ansi, fit

ENTER = "\x1b[?1049h\x1b[?25l"  # alternate screen, hide the cursor
LEAVE = "\x1b[?25h\x1b[?1049l"  # show the cursor, back to the normal screen
HOME, CLEAR_LINE_END, CLEAR_BELOW = "\x1b[H", "\x1b[K", "\x1b[J"


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


class LiveScreen:
    """`with LiveScreen() as screen:` then `screen.draw(lines)` and `screen.wait(seconds)`."""

    def __init__(self, keyboard: TextIO = sys.stdin, out: TextIO = sys.stdout) -> None:
        self.keyboard = keyboard
        self.out = out
        self._saved_modes: list | None = None
        self._saved_handlers: dict[int, object] = {}

    def __enter__(self) -> LiveScreen:
        for signum in (signal.SIGTERM, signal.SIGHUP):
            self._saved_handlers[signum] = signal.signal(signum, _interrupt)
        if self.keyboard.isatty():
            self._saved_modes = termios.tcgetattr(self.keyboard.fileno())
            tty.setcbreak(self.keyboard.fileno())
        self.out.write(ENTER)
        self.out.flush()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        with contextlib.suppress(OSError):  # the terminal may be gone (SIGHUP)
            self.out.write(LEAVE)
            self.out.flush()
        if self._saved_modes is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.keyboard.fileno(), termios.TCSADRAIN, self._saved_modes)
        for signum, handler in self._saved_handlers.items():
            signal.signal(signum, handler)

    def draw(self, lines: list[Line]) -> None:
        """Replace the screen's content, each line cut to the terminal's width (no wrapping, no scroll)."""
        columns, rows = shutil.get_terminal_size()
        shown = lines[:max(1, rows - 1)]
        if len(lines) > len(shown):
            shown[-1] = [(f"... {len(lines) - len(shown) + 1} more line(s): enlarge the window", "2")]
        body = "".join(as_ansi([fit(line, columns)]).rstrip("\n") + CLEAR_LINE_END + "\n" for line in shown)
        self.out.write(HOME + body + CLEAR_BELOW)
        self.out.flush()

    @property
    def rows(self) -> int:
        return shutil.get_terminal_size()[1]

    def wait(self, seconds: float) -> bytes | None:
        """Wait for the next refresh or a key: None when the time is up, else what was typed (b"" when the
        terminal was closed)."""
        if self._saved_modes is None:
            time.sleep(seconds)
            return None
        ready, _, _ = select.select([self.keyboard], [], [], seconds)
        if not ready:
            return None
        return os.read(self.keyboard.fileno(), 64)
