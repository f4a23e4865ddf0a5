import subprocess
import sys

from binlog_tailer import __version__
from binlog_tailer.cli import main


def test_version_flag_prints_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert __version__ in capsys.readouterr().out


def test_module_entry_point_runs():
    out = subprocess.run(
        [sys.executable, "-m", "binlog_tailer", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert "binlog-tailer" in out.stdout


def test_run_with_the_metrics_port_taken_is_one_error_line_and_exit_1(tmp_path):
    import os
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("BINLOG_TAILER_")}
        env |= {
            "BINLOG_TAILER_HTTP__PORT": str(port),
            "BINLOG_TAILER_CHECKPOINT__PATH": str(tmp_path / "offsets.json"),
        }
        out = subprocess.run(
            [sys.executable, "-m", "binlog_tailer", "run"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert out.returncode == 1, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 1, out.stderr
    assert f"cannot listen on 127.0.0.1:{port} for metrics and health" in lines[0]


def test_settings_prints_the_effective_settings_with_every_secret_masked(monkeypatch, capsys):
    import json

    monkeypatch.setenv("BINLOG_TAILER_MYSQL__PASSWORD", "Pw-mysql-1a2b")
    monkeypatch.setenv("BINLOG_TAILER_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("BINLOG_TAILER_KAFKA__SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("BINLOG_TAILER_KAFKA__SASL_USERNAME", "u")
    monkeypatch.setenv("BINLOG_TAILER_KAFKA__SASL_PASSWORD", "Pw-sasl-3c4d")
    monkeypatch.setenv(
        "BINLOG_TAILER_KAFKA__PRODUCER",
        json.dumps({"sasl.oauthbearer.client.secret": "Pw-oauth-5e6f", "linger.ms": 7}),
    )
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    for secret in ("Pw-mysql-1a2b", "Pw-sasl-3c4d", "Pw-oauth-5e6f"):
        assert secret not in out
    shown = json.loads(out)
    assert shown["mysql"]["password"] == "**********"
    assert shown["kafka"]["sasl_password"] == "**********"
    assert shown["kafka"]["producer"] == {
        "sasl.oauthbearer.client.secret": "**********",
        "linger.ms": 7,
    }
    assert shown["kafka"]["security_protocol"] == "SASL_SSL"  # the rest as it is
