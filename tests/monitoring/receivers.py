"""A receiver on 127.0.0.1 that records every request, on the tests' one recording HTTP server
(tests/support/recording_server.py).

Stands in for a webhook, Slack, Discord, Telegram or Alertmanager endpoint.
Responses can be scripted (e.g. ``[500, 200]``: fail once, then succeed) and
requests can be held until released (a receiver that hangs). Waiting for
requests uses a condition variable, never sleeps; async tests use
``await_requests``, which waits in a worker thread so the event loop keeps running.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tests.support.recording_server import RecordedRequest as _Recorded
from tests.support.recording_server import RecordingServer
from tests.support.recording_server import Response as _Response


@dataclass
class RecordedRequest(_Recorded):
    def json(self) -> Any:
        return json.loads(self.body)


Response = int | tuple[int, Any]


class RecordingReceiver(RecordingServer[RecordedRequest]):
    """Records requests; answers with the scripted responses, then ``default``.

    A response is a status code or ``(status, body)`` where body is bytes, str
    or JSON-able. With ``hold`` set, every request waits until :meth:`release`
    (or ``hold_timeout``) before it is answered.
    """

    name = "recording-receiver"

    def __init__(
        self,
        responses: Iterable[Response] = (),
        *,
        default: Response = (200, "ok"),
        hold: bool = False,
        hold_timeout: float = 30.0,
    ) -> None:
        super().__init__(request_type=RecordedRequest)
        self._responses: deque[Response] = deque(responses)
        self._default = default
        self._delay = hold_timeout if hold else 0.0

    def respond(self, request: RecordedRequest) -> _Response:
        with self._lock:
            scripted = self._responses.popleft() if self._responses else self._default
        status, body = (scripted, "") if isinstance(scripted, int) else scripted
        return _Response(status, body, delay=self._delay)
