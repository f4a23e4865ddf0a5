"""docker/Dockerfile, docker/compose.yaml and .dockerignore read as Docker would, for tests on
machines without a Docker engine."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker" / "compose.yaml"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: RUN, COPY, ENV, ...
    args: str  # continuation lines joined
    stage: str  # the stage's name (FROM ... AS name), else its index


def instructions(path: Path = DOCKERFILE) -> list[Instruction]:
    out: list[Instruction] = []
    stage, pending = "", ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # comments may sit inside a continuation too
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        pending = ""
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            as_name = len(words) == 3 and words[1].upper() == "AS"
            stage = words[2] if as_name else str(sum(i.keyword == "FROM" for i in out))
        out.append(Instruction(keyword, " ".join(args.split()), stage))
    return out


def stage(name: str) -> list[Instruction]:
    """The instructions of one stage, its FROM first."""
    found = [i for i in instructions() if i.stage == name]
    if not found:
        raise AssertionError(f"no stage {name!r} in {DOCKERFILE}")
    return found


def env(stage_instructions: list[Instruction]) -> dict[str, str]:
    """The ENV a stage sets (KEY=VALUE form)."""
    out: dict[str, str] = {}
    for i in stage_instructions:
        if i.keyword == "ENV":
            for word in shlex.split(i.args):
                key, _, value = word.partition("=")
                out[key] = value
    return out


def exec_form(args: str, after: str | None = None) -> list[str]:
    """The JSON array of an ENTRYPOINT/CMD, or of a HEALTHCHECK's CMD (`after="CMD"`)."""
    if after is not None:
        args = args[args.index(f" {after} ") + len(after) + 2 :]
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def _ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        regex = ""
        for part in re.split(r"(\*\*/|\*|\?)", glob):
            regex += {"**/": "(?:.*/)?", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
        patterns.append((negated, re.compile(regex + "(?:/.*)?")))  # a directory: all in it
    return patterns


def dockerignore_allows(path: str) -> bool:
    """Whether the build context holds this file (relative path): the last pattern matching
    it, or a directory above it, decides."""
    allowed = True
    for negated, regex in _ignore_patterns():
        if regex.fullmatch(path):
            allowed = negated
    return allowed


def build_stage(root: Path, name: str, run: Callable[[str, Path, dict[str, str]], None]) -> Path:
    """Build a stage without Docker: `root` stands for the image's /. In order, COPY puts
    the repository's files (through .dockerignore) where the image would have them, and each
    RUN calls `run(command, workdir, env so far)`. Returns the last WORKDIR."""
    workdir = PurePosixPath("/")
    env_so_far: dict[str, str] = {}
    for i in stage(name):
        if i.keyword == "WORKDIR":
            workdir = workdir / i.args
        elif i.keyword == "ENV":
            env_so_far.update(env([i]))
        elif i.keyword == "RUN":
            cwd = root / workdir.relative_to("/")
            cwd.mkdir(parents=True, exist_ok=True)
            run(i.args, cwd, dict(env_so_far))
        elif i.keyword == "COPY":
            words = [w for w in shlex.split(i.args) if not w.startswith("--")]
            *sources, dest = words
            target = root / (workdir / dest).relative_to("/")
            for source in sources:
                _copy(source.rstrip("/"), target, into_dir=dest.endswith("/"))
    return root / workdir.relative_to("/")


def _copy(source: str, target: Path, into_dir: bool) -> None:
    src = ROOT / source
    files = [p for p in sorted(src.rglob("*")) if p.is_file()] if src.is_dir() else [src]
    copied = 0
    for f in files:
        rel = f.relative_to(ROOT).as_posix()
        if not dockerignore_allows(rel):
            continue
        if src.is_dir():  # a directory's contents go into the destination
            out = target / f.relative_to(src)
        else:
            out = target / f.name if into_dir else target
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, out)
        copied += 1
    assert copied, f"COPY {source}: nothing in the build context (missing, or .dockerignore)"


_DEFAULT = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}")


def compose(interpolate: bool = True) -> dict[str, Any]:
    """docker/compose.yaml; `${VAR:-default}` replaced by its default, as with VAR unset."""
    text = COMPOSE.read_text()
    if interpolate:
        text = _DEFAULT.sub(lambda m: m.group(2), text)
        assert "${" not in text, "only ${VAR:-default} interpolation is expected in compose.yaml"
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def service_env(service: dict[str, Any]) -> dict[str, str]:
    """A compose service's `environment`, either form (mapping, or list of KEY=VALUE)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        return dict(item.partition("=")[::2] for item in raw)
    return {k: "" if v is None else str(v) for k, v in raw.items()}
