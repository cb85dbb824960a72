"""`shears api --workers N`: N API processes behind one socket, connections shared evenly.

In place of uvicorn's own supervisor for two reasons. Its children accept from the shared
socket greedily, so keep-alive clients pile up on one of them (service/balance.py): here
this process accepts and hands each connection to the child with the fewest open. And it
killed children that missed a 5 s health ping on a saturated host, then stopped the whole API
when the replacement was slow to start (seen in CI at load 8 on two cores): here a child is
replaced when it exits, and the API stops only when one fails before it ever served.
"""

import logging
import multiprocessing
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from service.balance import HandedServer
from service.connection_table import ConnectionTable, Load

log = logging.getLogger("shears.api")
# How long a child gets to finish its requests after SIGTERM before it is killed.
STOP_TIMEOUT_S = 30.0
# How often the accept loop looks up from a quiet socket to see whether it should stop.
ACCEPT_TIMEOUT_S = 0.5
# A connection accepted while no child serves yet (all starting) waits this long per look.
NO_CHILD_WAIT_S = 0.01
# How often the supervisor looks at its children (and at a stop request).
WATCH_S = 0.5
# How long the first clients wait for every child to start before the ones ready serve them.
READY_TIMEOUT_S = 60.0
_SPAWN = multiprocessing.get_context("spawn")  # a child imports the app afresh, no forked locks


class StopRequest:
    """Set by a signal handler, read by the loops. A plain attribute on purpose: a handler runs
    between two bytecodes of the main thread, which may hold a lock at that moment; one that
    called `threading.Event.set` deadlocked on its own Condition when a second SIGTERM came
    while the first was being handled (seen: the API never stopped)."""

    requested = False


@dataclass
class Child:
    process: BaseProcess
    inbox: socket.socket  # our end of the pair its connections go through
    handed: int = 0


@dataclass
class Children:
    config: uvicorn.Config
    table: ConnectionTable
    table_path: Path
    members: list[Child] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Child:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        process = _SPAWN.Process(target=_child, args=(self.config, self.table_path, theirs))
        process.start()
        theirs.close()
        ours.setblocking(False)  # a child that stopped reading is passed over, not waited for
        return Child(process, ours)

    def hand(self, connection: socket.socket, stop: StopRequest) -> None:
        """To the serving child with the fewest connections open or on their way to it."""
        while not stop.requested:
            with self.lock:
                for child in self._least_loaded_first():
                    try:
                        socket.send_fds(child.inbox, [b"c"], [connection.fileno()])
                    except OSError:
                        continue  # exiting (the watch loop replaces it) or not reading
                    child.handed += 1
                    return
            time.sleep(NO_CHILD_WAIT_S)

    def wait_until_serving(self, stop: StopRequest) -> None:
        """Until every child serves, so the first clients are spread over all of them (the
        socket listens already: connections wait in its queue). Not past one that died or
        `READY_TIMEOUT_S`: the watch loop deals with those."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not stop.requested and time.monotonic() < deadline:
            serving = self.table.loads()
            if all(c.process.pid in serving or not c.process.is_alive() for c in self.members):
                return
            time.sleep(NO_CHILD_WAIT_S)

    def _least_loaded_first(self) -> list[Child]:
        """The children that serve (those still starting have no row yet), by load."""
        loads = self.table.loads()
        ranked = [
            (_expected(child, loads[pid]), n, child)
            for n, child in enumerate(self.members)
            if (pid := child.process.pid) in loads
        ]
        return [child for *_, child in sorted(ranked, key=lambda r: r[:2])]


def _expected(child: Child, load: Load) -> int:
    """Its open connections, and those handed to it that it has not picked up yet."""
    return load.open + child.handed - load.adopted


def serve_processes(config: uvicorn.Config, workers: int) -> int:
    """Run `workers` children until SIGINT/SIGTERM; the exit code for `shears api`."""
    stop = StopRequest()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        stop.requested = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    listener = config.bind_socket()
    listener.listen(config.backlog)  # uvicorn leaves that to the server that serves on it
    listener.settimeout(ACCEPT_TIMEOUT_S)
    with tempfile.TemporaryDirectory(prefix="shears-api-") as folder:
        table_path = Path(folder) / "connections"
        children = Children(config, ConnectionTable.create(table_path), table_path)
        children.members = [children.start() for _ in range(workers)]
        children.wait_until_serving(stop)
        accepting = threading.Thread(
            target=_accept_forever, args=(listener, children, stop), name="shears-accept"
        )
        accepting.start()
        code = _watch(children, stop)
        stop.requested = True
        accepting.join()
        listener.close()
        _stop_all(children.members)
        children.table.close()
    return code


def _accept_forever(listener: socket.socket, children: Children, stop: StopRequest) -> None:
    while not stop.requested:
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError as exc:  # out of descriptors, a client gone before it was taken
            log.warning("accepting a connection failed: %s", exc)
            time.sleep(NO_CHILD_WAIT_S)  # a full descriptor table needs a moment to drain
            continue
        with connection:  # the child holds its own copy once handed
            children.hand(connection, stop)


def _watch(children: Children, stop: StopRequest) -> int:
    while True:
        time.sleep(WATCH_S)
        if stop.requested:  # children that saw the same Ctrl-C exit too: none is replaced
            return 0
        for i, child in enumerate(list(children.members)):
            if child.process.is_alive():
                continue
            if child.process.exitcode == STARTUP_FAILURE:
                # The app or its settings are broken: every replacement would fail alike.
                log.error("API process %s failed to start; stopping", child.process.pid)
                return STARTUP_FAILURE
            log.warning(
                "API process %s exited (%s); starting another",
                child.process.pid,
                child.process.exitcode,
            )
            replacement = children.start()
            with children.lock:
                children.members[i] = replacement
            child.inbox.close()


def _child(config: uvicorn.Config, table_path: Path, inbox: socket.socket) -> None:
    HandedServer(config, ConnectionTable(table_path), inbox).run()


def _stop_all(members: list[Child]) -> None:
    for child in members:
        if child.process.is_alive():
            child.process.terminate()
    for child in members:
        child.process.join(STOP_TIMEOUT_S)
        if child.process.is_alive():
            child.process.kill()
            child.process.join()
        child.inbox.close()
