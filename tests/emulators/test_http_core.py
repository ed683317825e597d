"""The shared HTTP/1.1 core, over raw sockets: ordering, keep-alive, close, malformed input."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import urlsplit

import pytest

from tests.conftest import BatchHandle
from tests.emulators.conftest import API_VERSION, bearer


def _read_response(stream: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    body = stream.read(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body


@pytest.fixture
def conn(batch_emulator: BatchHandle) -> Iterator[tuple[socket.socket, BinaryIO]]:
    parts = urlsplit(batch_emulator.url)
    sock = socket.create_connection((parts.hostname or "", parts.port or 0), timeout=5)
    with sock, sock.makefile("rb") as stream:
        yield sock, stream


def _get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


def test_pipelined_requests_are_answered_in_order(
    batch_emulator: BatchHandle, conn: tuple[socket.socket, BinaryIO]
) -> None:
    """Three requests in one write get three answers, in the order sent."""
    sock, stream = conn
    batch_emulator.control.add_job("b")
    sock.sendall(_get("/_emulator/jobs/a") + _get("/_emulator/health") + _get("/_emulator/jobs/b"))
    assert [_read_response(stream)[0] for _ in range(3)] == [404, 200, 200]


@pytest.mark.parametrize(
    ("fault", "status"),
    [({"latencyMs": 150, "status": 503}, 503), ({"latencyMs": 150}, 404)],
    ids=["delayed-answer", "suspended-handler"],
)
def test_a_slow_answer_holds_back_the_next(
    batch_emulator: BatchHandle,
    conn: tuple[socket.socket, BinaryIO],
    fault: dict[str, object],
    status: int,
) -> None:
    """A slow first request is still answered before a fast pipelined second one."""
    sock, stream = conn
    batch_emulator.control.add_fault(**fault)
    auth = f"Authorization: {bearer()}\r\n"
    slow = f"DELETE /jobs/j1?api-version={API_VERSION} HTTP/1.1\r\nHost: x\r\n{auth}\r\n".encode()
    sock.sendall(slow + _get("/_emulator/health") + slow)
    assert [_read_response(stream)[0] for _ in range(3)] == [status, 200, 404]


def test_keep_alive_serves_many_requests(conn: tuple[socket.socket, BinaryIO]) -> None:
    """One connection serves request after request."""
    sock, stream = conn
    for _ in range(50):
        sock.sendall(_get("/_emulator/health"))
        status, headers, _ = _read_response(stream)
        assert status == 200
        assert "connection" not in headers


def test_connection_close_is_honoured(conn: tuple[socket.socket, BinaryIO]) -> None:
    """Connection: close gets an answer marked close, then the server closes."""
    sock, stream = conn
    sock.sendall(_get("/_emulator/health", "Connection: close\r\n"))
    status, headers, _ = _read_response(stream)
    assert (status, headers["connection"]) == (200, "close")
    assert stream.read() == b""


def test_http_1_0_closes_after_one_answer(conn: tuple[socket.socket, BinaryIO]) -> None:
    """An HTTP/1.0 request without keep-alive is answered, then the connection closes."""
    sock, stream = conn
    sock.sendall(b"GET /_emulator/health HTTP/1.0\r\n\r\n")
    assert _read_response(stream)[0] == 200
    assert stream.read() == b""


def test_malformed_request_is_400_and_closed(conn: tuple[socket.socket, BinaryIO]) -> None:
    """Bytes that are not HTTP get a 400 and a closed connection."""
    sock, stream = conn
    sock.sendall(b"\x00\x01 nonsense\r\n\r\n")
    assert _read_response(stream)[0] == 400
    assert stream.read() == b""


def test_chunked_body_and_expect_continue(
    batch_emulator: BatchHandle, conn: tuple[socket.socket, BinaryIO]
) -> None:
    """A chunked body is reassembled; Expect: 100-continue gets an interim 100."""
    sock, stream = conn
    body = b'{"id": "chunky"}'
    sock.sendall(
        b"POST /_emulator/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Expect: 100-continue\r\n\r\n" + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    )
    assert stream.readline() == b"HTTP/1.1 100 Continue\r\n"
    assert stream.readline() == b"\r\n"
    assert _read_response(stream)[0] == 200
    assert batch_emulator.control.get_job("chunky") is not None
