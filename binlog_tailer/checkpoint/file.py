"""The default checkpoint store: a small JSON file, replaced atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from binlog_tailer.checkpoint import checkpoint_document, position_from_document
from binlog_tailer.errors import BinlogTailerError, CheckpointError
from binlog_tailer.position import BinlogPosition


class FileCheckpointStore:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def describe(self) -> str:
        return f"file {self.path}"

    def check(self) -> str:
        if self.path.exists():
            return f"file {self.path}"
        return f"file {self.path} (not written yet)"

    def load(self) -> BinlogPosition | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointError(f"cannot read checkpoint {self.path}: {exc}") from exc
        try:
            return position_from_document(json.loads(text))
        except CheckpointError:
            raise
        except (ValueError, KeyError, TypeError, BinlogTailerError) as exc:
            raise CheckpointError(
                f"checkpoint {self.path} is not readable ({exc}); fix it, or set a position with"
                " 'binlog-tailer offsets set', or remove it with 'binlog-tailer offsets reset'"
            ) from exc

    def save(self, position: BinlogPosition) -> None:
        data = checkpoint_document(position)
        directory = self.path.parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
            # write to a temporary file, fsync it, rename over the old one, fsync the directory:
            # a crash leaves either the old or the new checkpoint, never a torn one.
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=directory)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(data, f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dfd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise CheckpointError(f"cannot write checkpoint {self.path}: {exc}") from exc

    def reset(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise CheckpointError(f"cannot remove checkpoint {self.path}: {exc}") from exc
