"""docker/Dockerfile's install steps for real, without a Docker engine: the stage's COPY
instructions lay out the build context (through .dockerignore) in a temporary root, and its
RUN commands run there, in order, into a fresh virtualenv made with the image's Python
version; then the installed service answers."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from tests import docker_files as df

# The RUN steps run here: the install steps only. The image's user set-up (groupadd,
# useradd, its directory) would change this machine: it is recognised and passed over. Any
# other RUN fails the test rather than run on the host.
INSTALL_STEP = re.compile(r"docker/install\.sh [a-z]+")
USER_SETUP = re.compile(r"groupadd --system [^;|]*&& useradd --system [^;|]*")


def _image_python() -> str:
    """An interpreter of the image's Python version, else the running one."""
    first = df.instructions()[0]
    version = first.args.removeprefix("PYTHON_VERSION=")
    assert first.keyword == "ARG" and re.fullmatch(r"3\.\d+", version), first
    home = os.path.expanduser("~")
    candidates = [shutil.which(f"python{version}")]
    candidates += sorted(glob.glob(f"{home}/.pyenv/versions/{version}.*/bin/python{version}"))
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return sys.executable


def test_image_install_steps_work_in_a_fresh_virtualenv(tmp_path: Path):
    root, venv, python_dir = tmp_path / "image", tmp_path / "venv", tmp_path / "python"
    python_dir.mkdir()
    (python_dir / "python3").symlink_to(_image_python())
    ran: list[str] = []

    def run(command: str, cwd: Path, image_env: dict[str, str]) -> None:
        if USER_SETUP.fullmatch(command):
            return
        assert INSTALL_STEP.fullmatch(command), f"RUN {command}: unknown step, not run here"
        assert image_env["VIRTUAL_ENV"] == "/opt/venv"
        assert image_env["PATH"].startswith("/opt/venv/bin:")
        env = {
            **os.environ,
            **image_env,
            "VIRTUAL_ENV": str(venv),
            "PATH": f"{python_dir}:{venv / 'bin'}:{os.environ['PATH']}",
        }
        env.pop("PIP_NO_CACHE_DIR")  # the image keeps no cache; here pip's warm one helps
        env.pop("PYTHONPATH", None)
        r = subprocess.run(
            ["sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
        assert r.returncode == 0, f"RUN {command}\n{r.stdout}{r.stderr}"
        ran.append(command)

    df.build_stage(root, "binlog-tailer", run)
    assert ran == ["docker/install.sh deps", "docker/install.sh app"]

    image_env = {k: v for k, v in df.env(df.stage("binlog-tailer")).items() if k != "PATH"}
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        **image_env,
        "VIRTUAL_ENV": str(venv),
    }
    bin_dir = venv / "bin"
    version = tomllib.loads((df.ROOT / "pyproject.toml").read_text())["project"]["version"]
    r = subprocess.run(
        [bin_dir / "binlog-tailer", "--version"], env=env, capture_output=True, text=True
    )
    assert (r.returncode, r.stdout.strip()) == (0, f"binlog-tailer {version}"), r.stderr
    r = subprocess.run(
        [bin_dir / "binlog-tailer", "check", "--help"], env=env, capture_output=True, text=True
    )
    assert r.returncode == 0 and r.stdout.startswith("usage: binlog-tailer check"), r.stderr
    # installed into the virtualenv, not run from the checkout
    r = subprocess.run(
        [bin_dir / "python", "-c", "import binlog_tailer, sys; print(binlog_tailer.__file__)"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert r.stdout.startswith(str(venv)), r.stdout + r.stderr
    assert (venv / "requirements.txt").read_text().count("\n") >= 5  # the dependencies

    # the example's stage: the same virtualenv, and the examples copied beside
    app = df.build_stage(root, "popular-articles", run)
    r = subprocess.run(
        [bin_dir / "python", "-m", "examples.popular_articles.live", "--help"],
        env=env,
        cwd=app,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0 and "--rate" in r.stdout, r.stderr
