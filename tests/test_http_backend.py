"""The network backend under the migrator's HTTP pools: same answers as httpcore's, a cheaper readability check."""

from __future__ import annotations

import asyncio
import select
import socket

import httpcore
import httpx
import pytest

from migrator.connect import POOL_SHARDS, pooled_transport
from migrator.http_backend import ShardedTransport, SocketCachingBackend, SocketCachingStream, socket_readable


@pytest.mark.parametrize("has_poll", [True, False], ids=["poll", "select (Windows)"])
def test_socket_readable_is_false_for_a_quiet_socket_and_true_once_data_or_eof_waits(
    has_poll: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not has_poll:
        monkeypatch.delattr(select, "poll")
    ours, peer = socket.socketpair()
    try:
        assert socket_readable(ours) is False
        peer.sendall(b"x")
        assert socket_readable(ours) is True
        ours.recv(1)
        assert socket_readable(ours) is False
        peer.close()
        assert socket_readable(ours) is True  # EOF: the pool drops the connection
    finally:
        ours.close()
        peer.close()


def test_a_closed_or_missing_socket_reads_as_readable() -> None:
    closed, peer = socket.socketpair()
    closed.close()
    peer.close()
    assert socket_readable(closed) is True
    assert socket_readable(None) is True


def test_the_migrators_transport_is_four_pools_on_the_caching_backend_sharing_the_connections() -> None:
    transport = pooled_transport(httpx.Limits(max_connections=24, max_keepalive_connections=22))
    assert isinstance(transport, ShardedTransport) and len(transport.shards) == POOL_SHARDS == 4
    for shard in transport.shards:
        pool = shard._pool
        assert isinstance(pool, httpcore.AsyncConnectionPool)
        assert isinstance(pool._network_backend, SocketCachingBackend)
        assert (pool._max_connections, pool._max_keepalive_connections) == (6, 6)  # 22 / 4 rounded up


async def _keep_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peers: list[int]) -> None:
    """Answers every request of a connection with the connection's client port."""
    port = writer.get_extra_info("peername")[1]
    try:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            peers.append(port)
            body = str(port).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


@pytest.mark.anyio
async def test_requests_take_the_pools_in_turn_and_each_pool_keeps_its_connections_alive() -> None:
    peers: list[int] = []
    server = await asyncio.start_server(lambda r, w: _keep_alive(r, w, peers), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limits = httpx.Limits(max_connections=3, max_keepalive_connections=3)
    try:
        transport = pooled_transport(limits, shards=3)
        async with httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{port}") as client:
            answers = [(await client.get("/")).text for _ in range(7)]
    finally:
        server.close()
    first_round = answers[:3]
    assert len(set(first_round)) == 3  # one connection per pool
    assert answers[3:6] == first_round and answers[6] == first_round[0]  # then each pool reuses its own


async def _one_answer_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A server that keeps nothing alive: it answers one request, then closes while the client idles."""
    await reader.readuntil(b"\r\n\r\n")
    body = b'{"ok": true}'
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()
    writer.close()
    await writer.wait_closed()


@pytest.mark.anyio
async def test_an_idle_connection_the_server_closed_is_dropped_not_reused() -> None:
    """httpcore asks the backend whether an idle connection is readable: EOF means the server left, so a
    second request must open a new connection instead of failing on the dead one."""
    closed = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _one_answer_per_connection(reader, writer)
        closed.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    try:
        async with httpx.AsyncClient(transport=pooled_transport(limits, shards=1), base_url=f"http://127.0.0.1:{port}") as client:
            first = await client.get("/one")
            await closed.wait()
            second = await client.get("/two")
        assert (first.json(), second.json()) == ({"ok": True}, {"ok": True})
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.anyio
async def test_the_stream_passes_every_other_question_to_anyio() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        stream = await SocketCachingBackend().connect_tcp("127.0.0.1", port)
        assert isinstance(stream, SocketCachingStream)
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", port)
        assert stream.get_extra_info("is_readable") is False
        await stream.aclose()
    finally:
        server.close()
