"""A TCP forwarder that can be switched on late: 'the broker is not up yet' without touching the broker."""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Listens on `port` (once started) and pipes every connection to `target`."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []

    @classmethod
    def in_front_of(cls, bootstrap_servers: str) -> TcpProxy:
        """A not-yet-started proxy on a free port for the first broker: a broker that is 'not up yet'."""
        from streaming.local_broker import free_port

        host, port = bootstrap_servers.split(",")[0].rsplit(":", 1)
        return cls(free_port(), (host, int(port)))

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self._listener = listener
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        for sock in [self._listener, *self._sockets]:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
