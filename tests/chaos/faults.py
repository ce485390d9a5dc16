"""Faults the chaos suite injects: an S3 endpoint that goes away and comes back (a TCP proxy in
front of the S3 server, so its data outlives the outage, as a real store's does), Serve replicas
and the job tracker killed, and a load of concurrent clients to suffer them."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator


class TcpProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target`. `stop()` closes the listener and resets
    every open connection (clients get refused and reset connections, as when a server dies);
    `start()` listens again on the same port."""

    def __init__(self, target: int, port: int) -> None:
        self.target, self.port = target, port
        self._listener: socket.socket | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, set()
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
                connection.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # stopped meanwhile
                    client.close()
                    upstream.close()
                    return
                self._connections |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._connections -= {source, sink}


@contextlib.contextmanager
def proxied(target: int, port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target, port)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def replicas(deployment: str, app: str = "lithoseg") -> list[str]:
    """Names of the live replica actors of one deployment (Serve names them
    SERVE_REPLICA::<app>#<deployment>#<id> in the "serve" namespace)."""
    import ray

    return [
        a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(f"SERVE_REPLICA::{app}#{deployment}#")
    ]


def kill_replica(deployment: str) -> str | None:
    """Kill one replica of `deployment` as a crash would (Serve's controller replaces it)."""
    import ray

    names = replicas(deployment)
    if not names:
        return None
    with contextlib.suppress(ValueError):
        ray.kill(ray.get_actor(names[0], namespace="serve"), no_restart=True)
    return names[0]


def kill_tracker(name: str) -> None:
    """Kill the detached job tracker; Ray restarts it (max_restarts=-1) and it reloads from the store."""
    import ray

    from deployments.tracker import TRACKER_NAMESPACE

    ray.kill(ray.get_actor(name, namespace=TRACKER_NAMESPACE), no_restart=False)
