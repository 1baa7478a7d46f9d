"""A TCP proxy in front of moto_server whose behaviour a test switches, to stage S3 outages.

Modes (``FaultProxy.set_mode``):

- ``pass``: bytes flow both ways.
- ``refuse``: the listening socket is closed, so a new connection is refused (ECONNREFUSED), as when the
  endpoint is down; it listens again on the same port when the mode changes.
- ``blackhole``: a new connection is accepted and never answered, as behind a dropped route.
- ``reset``: a new connection's request reaches moto, but the answer is cut after ``reset_after`` bytes
  with a TCP reset (a connection reset mid-stream).

Every mode change resets the connections already open: botocore keeps connections alive between requests,
and an outage that spared them would not bite. Leaving ``blackhole`` resets the stalled ones too: botocore
would otherwise wait out its read timeout (60 s in spot_runner/storage.py) before retrying, longer than the
CI budget; a real network would break them at some point as well.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
from collections import Counter

MODES = ("pass", "refuse", "blackhole", "reset")


def _abort(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), not a graceful FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Link:
    """One client connection and, unless black-holed, its connection to moto."""

    def __init__(self, client: socket.socket, upstream: socket.socket | None, budget: int | None):
        self.client, self.upstream = client, upstream
        self.budget = budget  # bytes of the answer still forwarded (reset mode); None: no limit
        self.dead = False
        self.open_pumps = 2
        self.lock = threading.Lock()

    def abort(self) -> None:
        with self.lock:
            if self.dead:
                return
            self.dead = True
        _abort(self.client)
        if self.upstream is not None:
            _abort(self.upstream)

    def pump(self, src: socket.socket, dst: socket.socket, answer: bool, on_end) -> None:
        """Copy src to dst; select with a timeout so an abort is seen at once. An end of stream is passed on
        as one (moto_server closes its side after each answer, and the client must read all of it); the
        link is closed when both directions have ended, or reset when a reset-mode answer is cut."""
        cut = False
        try:
            while not self.dead:
                ready, _, _ = select.select([src], [], [], 0.05)
                if not ready:
                    continue
                data = src.recv(65536)
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    break
                if answer and self.budget is not None:
                    data = data[: self.budget]
                    self.budget -= len(data)
                dst.sendall(data)
                if answer and self.budget is not None and self.budget <= 0:
                    cut = True
                    break
        except (OSError, ValueError):  # the other pump or a mode change closed the sockets
            cut = True
        with self.lock:
            self.open_pumps -= 1
            last = self.open_pumps == 0
        if cut:
            self.abort()
        elif last and not self.dead:
            self.dead = True
            self.client.close()
            self.upstream.close()
        on_end(self)


class FaultProxy:
    """``http://127.0.0.1:<port>`` in front of ``upstream`` (host, port); ``seen`` counts connections by
    the mode they met (a test can show that the outage was really hit)."""

    def __init__(self, upstream: tuple[str, int], reset_after: int = 64):
        self.upstream = upstream
        self.reset_after = reset_after
        self.mode = "pass"
        self.seen: Counter[str] = Counter()
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._listener: socket.socket | None = None
        self.port = 0
        self._listen()
        self.url = f"http://127.0.0.1:{self.port}"

    # listening --------------------------------------------------------------------------------

    def _listen(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        sock.settimeout(0.05)  # the accept loop notices a closed listener within 50 ms
        self.port = sock.getsockname()[1]
        self._listener = sock
        threading.Thread(target=self._accept_loop, args=(sock,), daemon=True, name="proxy-accept").start()

    def _stop_listening(self) -> None:
        sock, self._listener = self._listener, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept_loop(self, sock: socket.socket) -> None:
        while True:
            try:
                client, _ = sock.accept()
            except TimeoutError:
                if sock is not self._listener:
                    return
                continue
            except OSError:  # closed: refuse mode or close()
                return
            client.settimeout(None)
            threading.Thread(target=self._serve, args=(client,), daemon=True, name="proxy-link").start()

    def _serve(self, client: socket.socket) -> None:
        mode = self.mode
        self.seen[mode] += 1
        if mode == "blackhole":
            self._add(_Link(client, None, None))
            return
        if mode not in ("pass", "reset"):  # refuse: accepted in the instant the listener closed
            _abort(client)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
            upstream.settimeout(None)
        except OSError:
            _abort(client)
            return
        link = _Link(client, upstream, self.reset_after if mode == "reset" else None)
        self._add(link)
        threading.Thread(
            target=link.pump, args=(client, upstream, False, self._ended), daemon=True, name="proxy-up"
        ).start()
        link.pump(upstream, client, True, self._ended)

    def _add(self, link: _Link) -> None:
        with self._lock:
            self._links.add(link)
        if self._closed:
            link.abort()

    def _ended(self, link: _Link) -> None:
        if link.dead:
            with self._lock:
                self._links.discard(link)

    # control ------------------------------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {MODES}")
        with self._lock:
            previous, self.mode = self.mode, mode
            links, self._links = list(self._links), set()
            if mode == "refuse":
                self._stop_listening()
            elif previous == "refuse":
                self._listen()
        for link in links:
            link.abort()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._stop_listening()
            links, self._links = list(self._links), set()
        for link in links:
            link.abort()
