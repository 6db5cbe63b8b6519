"""monitor.py --web started as a user starts it, on a free port, for the web tests."""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from conftest import PROJECT_DIR, script_env

SERVING = re.compile(r"web page at (http://\S+)/ ")


@contextlib.contextmanager
def web(db_path: Path, log_path: Path, *args: str, listen: str = "127.0.0.1:0", **settings: str) -> Iterator[str]:
    """monitor.py --web on a free port; yields its base URL."""
    command = [sys.executable, str(PROJECT_DIR / "monitor.py"), "--env-file", "/dev/null", "--web", "--db",
               str(db_path), "--listen", listen, *args]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(command, env=script_env(**settings), stdout=log_file, stderr=subprocess.STDOUT,
                                   cwd=PROJECT_DIR)
    try:
        deadline = time.monotonic() + 30
        while not (found := SERVING.search(log_path.read_text())):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield found.group(1)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
