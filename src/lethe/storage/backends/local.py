"""The local filesystem backend: plain paths and `file://` URIs."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from lethe.errors import StorageError
from lethe.storage.backends.base import ArtifactNotFoundError, Backend
from lethe.storage.uris import local_path

_TEMP_SUFFIX = ".part"


def temp_beside(dest: Path) -> Path:
    """A fresh temporary file in `dest`'s folder (same filesystem, so os.replace is atomic)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=_TEMP_SUFFIX)
    os.close(fd)
    return Path(name)


def _is_temp(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(_TEMP_SUFFIX)


class LocalBackend(Backend):
    """Objects are files; URIs come back as plain paths."""

    def _write_via_temp(self, uri: str, fill: Callable[[Path], object]) -> None:
        dest = local_path(uri)
        try:
            tmp = temp_beside(dest)
            try:
                fill(tmp)
                os.replace(tmp, dest)  # readers see the old or the new file, never a partial one
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot write {uri}: {exc.strerror or exc}") from exc

    def read_bytes(self, uri: str) -> bytes:
        try:
            return local_path(uri).read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactNotFoundError(f"no artifact at {uri}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {uri}: {exc.strerror or exc}") from exc

    def write_bytes(self, uri: str, data: bytes) -> None:
        self._write_via_temp(uri, lambda tmp: tmp.write_bytes(data))

    def upload_file(self, src: Path, uri: str) -> None:
        self._write_via_temp(uri, lambda tmp: shutil.copyfile(src, tmp))

    def download_file(self, uri: str, dest: Path) -> None:
        try:
            shutil.copyfile(local_path(uri), dest)
        except FileNotFoundError as exc:
            raise ArtifactNotFoundError(f"no artifact at {uri}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {uri}: {exc.strerror or exc}") from exc

    def exists(self, uri: str) -> bool:
        return local_path(uri).is_file()

    def list(self, prefix: str) -> list[str]:
        folder = local_path(prefix)
        if not folder.is_dir():
            return []
        # Another writer's half-written temporary files are not objects yet.
        return sorted(str(p) for p in folder.rglob("*") if p.is_file() and not _is_temp(p))

    def delete(self, uri: str) -> None:
        try:
            local_path(uri).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot delete {uri}: {exc.strerror or exc}") from exc

    def join(self, base: str, *parts: str) -> str:
        return str(local_path(base).joinpath(*parts))

    def absolute_uri(self, uri: str) -> str:
        return local_path(uri).resolve().as_uri()
