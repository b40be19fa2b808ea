"""A TCP proxy in front of the test registry that can drop connections: once, after some bytes
of a response (a transient failure a retry recovers from), or for good (the registry "goes
down" in the middle of a pull)."""

from __future__ import annotations

import socket
import threading


class FlakyProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target`` (``host:port``)."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.relayed = 0  # response bytes sent to clients
        self.drop_once_after: int | None = None  # drop one connection past this many bytes
        self.down_after: int | None = None  # refuse everything past this many bytes
        self.drops = 0
        self.down = False
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, response: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if response:
                    with self.lock:
                        self.relayed += len(data)
                        drop = False
                        if self.drop_once_after is not None and self.relayed > self.drop_once_after:
                            self.drop_once_after = None
                            self.drops += 1
                            drop = True
                        if self.down_after is not None and self.relayed > self.down_after:
                            self.down = True
                            drop = True
                    if drop:
                        dst.sendall(data[: len(data) // 2])
                        if self.down:
                            self._close_all()
                        break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def _close_all(self) -> None:
        with self.lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        try:
            self.listener.close()
        except OSError:
            pass

    def close(self) -> None:
        self.down = True
        self._close_all()
