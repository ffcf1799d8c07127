"""httpcore's network backend with a cheaper "is this idle connection readable?" check.

httpcore's pool asks every idle keep-alive connection ``get_extra_info("is_readable")`` each time a
request starts or ends (a server that closed it, or sent garbage, makes it readable: it is dropped).
The anyio stream answers by building a dict of every socket attribute first (a ``getpeername()``
call and several lambdas), which was ~13 % of the migrator's CPU in the unthrottled benchmark
(docs/benchmarks.md, section 2). This stream keeps the raw socket it was given at connect time and
answers the same question with the same ``poll()``; everything else goes to anyio unchanged.
A network backend is httpcore's public extension point (``AsyncConnectionPool(network_backend=...)``).
"""

from __future__ import annotations

import itertools
import select
import socket
import typing

import httpcore
import httpx


def socket_readable(sock: socket.socket | None) -> bool:
    """What httpcore's check answers: a socket gone (or without a descriptor) reads as readable (EOF)."""
    if sock is None or sock.fileno() < 0:
        return True
    if not hasattr(select, "poll"):  # Windows: httpcore's own check falls back to select() there too
        return bool(select.select([sock], [], [], 0)[0])
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class SocketCachingStream(httpcore.AsyncNetworkStream):
    """A stream whose readability check reads the socket it was opened on, not anyio's attribute map."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self.inner = inner
        self.raw_socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self.inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self.inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def start_tls(
        self,
        ssl_context: typing.Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return SocketCachingStream(await self.inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable" and self.raw_socket is not None:
            return socket_readable(self.raw_socket)
        return self.inner.get_extra_info(info)


class SocketCachingBackend(httpcore.AsyncNetworkBackend):
    """httpcore's anyio backend, its streams wrapped in :class:`SocketCachingStream`."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        stream = await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return SocketCachingStream(stream)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return SocketCachingStream(await self.inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class ShardedTransport(httpx.AsyncBaseTransport):
    """Requests dealt in turn over several transports, each with its share of the connections.

    httpcore's pool does work proportional to (idle connections x all connections) each time a request
    starts or ends; four pools of 6 connections cost far less than one of 24 for the same 16 requests.
    """

    def __init__(self, shards: list[httpx.AsyncBaseTransport]) -> None:
        self.shards = shards
        self._turn = itertools.cycle(shards)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await next(self._turn).handle_async_request(request)

    async def aclose(self) -> None:
        for shard in self.shards:
            await shard.aclose()
