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
