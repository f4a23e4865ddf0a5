"""JSON log lines, the live progress line, and the progress log off a terminal."""

import io
import json
import logging
from types import SimpleNamespace

from binlog_tailer.logs import setup_logging
from binlog_tailer.progress import Progress, eta_seconds, human_bytes, human_seconds, live_line
from tests.unit.test_pipeline import build, end, row


def test_json_logs_are_one_object_per_line_with_the_exception(capsys):
    out = io.StringIO()
    setup_logging("INFO", "json", out)
    log = logging.getLogger("binlog_tailer.test")
    log.info("streaming from %s", "b.000001:4")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        log.exception("failed")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    first, second = map(json.loads, lines)
    assert first["message"] == "streaming from b.000001:4"
    assert first["level"] == "INFO" and first["logger"] == "binlog_tailer.test"
    assert first["time"].endswith("+00:00")
    assert second["level"] == "ERROR" and "ValueError: bad\nthing" in second["exception"]


def test_log_lines_erase_the_live_line_and_redraw_it_below():
    out = io.StringIO()
    console = setup_logging("INFO", "text", out)
    console.show("catching up: 10 rows/s")
    logging.getLogger("binlog_tailer.test").warning("something")
    console.show("")
    text = out.getvalue()
    assert text.startswith("\r\x1b[Kcatching up: 10 rows/s\r\x1b[K")
    after_clear = text.split("\r\x1b[K")[2]
    assert "WARNING binlog_tailer.test: something\ncatching up: 10 rows/s" in after_clear
    assert text.endswith("\r\x1b[K")  # erased at the end


def test_progress_formatting():
    assert human_bytes(512) == "512 B"
    assert human_bytes(3 * 1024 * 1024) == "3.0 MiB"
    assert human_seconds(3725) == "1:02:05"
    assert eta_seconds(1000, 100.0) == 10.0
    assert eta_seconds(0, 100.0) is None and eta_seconds(1000, None) is None
    assert live_line(1234.4, 3.25, 2048, 65) == (
        "catching up: 1,234 rows/s, lag 3.2 s, 2.0 KiB behind, ETA 0:01:05"
    )


def test_the_live_line_shows_while_catching_up_and_is_cleared_after(caplog):
    pipeline, _, _ = build([row(1), end(200), None])
    pipeline.run()
    monitor = SimpleNamespace(behind=10 << 20, read_rate=1 << 20)
    shown: list[str] = []
    console = SimpleNamespace(show=shown.append)
    progress = Progress(pipeline, monitor, console, 30)  # type: ignore[arg-type]
    progress.tick()
    assert shown[-1].startswith("catching up:") and "10.0 MiB behind, ETA 0:00:10" in shown[-1]
    monitor.behind = 0
    with caplog.at_level(logging.INFO):
        progress.tick()
    assert shown[-1] == ""
    assert "caught up" in caplog.text


def test_off_a_terminal_progress_is_logged_only_when_something_happened(caplog):
    pipeline, _, _ = build([row(1), end(200), None])
    progress = Progress(pipeline, SimpleNamespace(behind=0, read_rate=None), None, 30)  # type: ignore[arg-type]
    pipeline.run()
    with caplog.at_level(logging.INFO):
        progress.tick()
        progress.tick()  # nothing new
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("progress")]
    assert len(lines) == 1
    assert lines[0].startswith("progress: 1 rows") and "0 B behind" in lines[0]
