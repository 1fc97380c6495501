"""Logs: JSON lines when asked, secrets redacted either way, no HTTP wire traces in verbose mode."""

from __future__ import annotations

import json
import logging

from herald.logs import WIRE, JsonFormatter, setup_logging


def test_json_lines_carry_time_level_logger_and_a_redacted_message():
    record = logging.LogRecord(
        "herald.engine", logging.WARNING, __file__, 1, "token=%s refused", ("s3cr3t-v4lue",), None
    )
    out = json.loads(JsonFormatter().format(record))
    assert out["level"] == "warning" and out["logger"] == "herald.engine"
    assert "s3cr3t-v4lue" not in out["message"] and "[REDACTED]" in out["message"]
    assert out["time"].endswith("+00:00")


def test_verbose_mode_keeps_http_wire_traces_out():
    setup_logging("json", verbose=True)
    try:
        assert logging.getLogger().level == logging.DEBUG
        for name in WIRE:
            assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING, name
    finally:
        setup_logging("text", verbose=False)
