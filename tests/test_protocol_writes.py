"""One write per response (``api.protocol._OneWrite``), without a server: the head of a response
of known length waits for its body and leaves with it; ``100 Continue``, chunked responses and
a close with the head still held go out as before."""

from __future__ import annotations

from types import SimpleNamespace

from api.protocol import _OneWrite


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _cycle() -> SimpleNamespace:
    return SimpleNamespace(response_started=False, chunked_encoding=None)


def test_head_and_body_of_a_sized_response_leave_in_one_write() -> None:
    transport, cycle = Transport(), _cycle()
    out = _OneWrite(transport, cycle)  # type: ignore[arg-type]
    out.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # before the response: at once
    assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    cycle.response_started, cycle.chunked_encoding = True, False
    out.write(b"HEAD\r\n\r\n")
    assert len(transport.writes) == 1  # held
    out.write(b"body")
    assert transport.writes[1:] == [b"HEAD\r\n\r\nbody"]
    out.write(b"more")
    assert transport.writes[2:] == [b"more"] and not out.is_closing()


def test_chunked_responses_pass_and_a_close_sends_a_held_head() -> None:
    transport, cycle = Transport(), _cycle()
    out = _OneWrite(transport, cycle)  # type: ignore[arg-type]
    cycle.response_started, cycle.chunked_encoding = True, True
    out.write(b"HEAD")
    assert transport.writes == [b"HEAD"]
    transport, cycle = Transport(), _cycle()
    out = _OneWrite(transport, cycle)  # type: ignore[arg-type]
    cycle.response_started, cycle.chunked_encoding = True, False
    out.write(b"HEAD")
    out.close()  # the app failed after starting its response
    assert transport.writes == [b"HEAD"] and transport.closed
