"""A TCP proxy that breaks one connection mid-answer: a network fault between a real client
and a real server, for the tests of resumed downloads."""

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

_BUFFER = 64 << 10


@dataclass
class CuttingProxy:
    """Forwards 127.0.0.1:`port` to `upstream_port`; the first answer longer than
    `cut_after` bytes is cut off there (both sockets closed), later ones pass whole."""

    upstream_port: int
    cut_after: int
    cuts: int = 0
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _claim_cut(self) -> bool:
        with self._lock:
            if self.cuts:
                return False
            self.cuts += 1
            return True

    def handle(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
        answered = 0
        try:
            while data := upstream.recv(_BUFFER):
                if answered + len(data) > self.cut_after and self._claim_cut():
                    client.sendall(data[: max(0, self.cut_after - answered)])
                    return
                answered += len(data)
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client, upstream)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(_BUFFER):
            sink.sendall(data)
    except OSError:
        pass


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextlib.contextmanager
def cutting_proxy(upstream_port: int, cut_after: int) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(upstream_port, cut_after)

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            proxy.handle(self.request)

    with _Server(("127.0.0.1", 0), Handler) as server:
        proxy.port = int(server.server_address[1])
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield proxy
        finally:
            server.shutdown()
