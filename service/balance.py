"""An API process that serves the connections its supervisor hands it.

With several processes on one listening socket, the one that wakes first accepts every
connection waiting, and keep-alive pins each connection to its process: 50 clients that
connected at once split 16/34 between two processes (measured), and the busier process set
the p99 of createJob. So no process here listens: the supervisor accepts, and hands each
connection (its file descriptor, over a Unix socket) to the process with the fewest open
(service/processes.py), which each process keeps current in a shared table.
"""

import asyncio
import functools
import socket

import uvicorn

from service.connection_table import ConnectionTable, Load

# How often a process writes its count while nothing is handed to it (connections close).
PUBLISH_S = 0.1
# File descriptors read from the supervisor per message at most.
MAX_FDS = 64


class HandedServer(uvicorn.Server):
    """uvicorn's server, its connections handed in through `inbox` instead of accepted."""

    def __init__(self, config: uvicorn.Config, table: ConnectionTable, inbox: socket.socket):
        super().__init__(config)
        self._table = table
        self._inbox = inbox
        self._adopted = 0
        self._pending = 0  # handed in, not yet connected to a protocol
        self._adopting: set[asyncio.Task[None]] = set()  # the tasks connecting them

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # no listener of its own
        if not self.started:
            return
        loop = asyncio.get_running_loop()
        self._inbox.setblocking(False)
        loop.add_reader(self._inbox.fileno(), self._receive)
        self._table.claim()  # now the supervisor may hand us connections
        self._publish_every()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._table.release()
        asyncio.get_running_loop().remove_reader(self._inbox.fileno())
        await super().shutdown(sockets)

    def load(self) -> Load:
        return Load(len(self.server_state.connections) + self._pending, self._adopted)

    def _receive(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self._inbox, 1, MAX_FDS)
            except BlockingIOError:
                break
            except OSError:
                data, fds = b"", []
            if not data and not fds:  # the supervisor is gone: so is our source of work
                loop.remove_reader(self._inbox.fileno())
                self.should_exit = True
                return
            for fd in fds:
                self._adopted += 1
                self._pending += 1
                task = loop.create_task(self._adopt(socket.socket(fileno=fd)))
                self._adopting.add(task)
                task.add_done_callback(self._adopting.discard)
        self._table.publish(self.load())

    async def _adopt(self, connection: socket.socket) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(self._protocol, connection)
        except OSError:
            self._pending -= 1
            connection.close()  # the client left while it was handed over

    def _protocol(self) -> asyncio.Protocol:
        # What uvicorn's own startup builds for the connections it accepts.
        protocol: asyncio.Protocol = self._counted(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )
        return protocol

    @functools.cached_property
    def _counted(self) -> type[asyncio.Protocol]:
        """uvicorn's protocol, keeping the count exact: a connection leaves `_pending` in the
        same call that puts it in `server_state.connections`, and the table hears at once when
        one closes (a count off by a few for a while draws connections to the other process,
        or away from it)."""
        server = self

        class Counted(self.config.http_protocol_class):  # type: ignore[misc,name-defined]
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                server._pending -= 1

            def connection_lost(self, exc: Exception | None) -> None:
                super().connection_lost(exc)
                server._table.publish(server.load())

        return Counted

    def _publish_every(self) -> None:
        if self.should_exit:
            return
        self._table.publish(self.load())
        asyncio.get_running_loop().call_later(PUBLISH_S, self._publish_every)
