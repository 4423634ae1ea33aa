"""Write and read artifacts by URI, each with a sha256 sidecar that is checked on every read.

`<uri>.sha256` holds `<hex>  <name>` (the `sha256sum` format, so `sha256sum -c` works on local
copies). The data is written before its sidecar, so a reader never trusts a half-written file:
no sidecar is refused like a wrong one. A directory is its files plus `lethe-manifest.json`
(relative path -> sha256), written last: a missing, extra or altered file is detected.
The bytes themselves move through the backend of the URI's scheme (lethe.storage.backends).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

from lethe.errors import IntegrityError, StorageError
from lethe.storage.backends import ArtifactNotFoundError, backend_for, join_uri
from lethe.storage.backends.local import temp_beside
from lethe.storage.uris import SIDECAR_SUFFIX, sidecar_uri

MANIFEST = "lethe-manifest.json"
_CHUNK = 1024 * 1024


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


#: A secret that makes sidecars keyed: each also records an HMAC-SHA256 of its line, so a sidecar
#: regenerated for altered data without the key is refused. Unset: plain sha256 sidecars, as ever.
SEAL_KEY_ENV = "LETHE_SIDECAR_KEY"
_SEAL = "hmac-sha256"


def _seal_key() -> bytes | None:
    value = os.environ.get(SEAL_KEY_ENV, "")
    return value.encode() if value.strip() else None


def _seal(sha: str, name: str, key: bytes) -> str:
    return hmac.new(key, f"{sha}  {name}".encode(), hashlib.sha256).hexdigest()


def sidecar_text(sha: str, name: str) -> str:
    """A sidecar's text: `<sha256>  <name>` (sha256sum's format), and with a configured key
    (LETHE_SIDECAR_KEY) a second line `hmac-sha256 <hex>` that vouches for the first."""
    key = _seal_key()
    return f"{sha}  {name}\n" + (f"{_SEAL} {_seal(sha, name, key)}\n" if key else "")


def sidecar_sha256(text: bytes, name: str, where: str) -> str:
    """The sha256 a sidecar records for the file `name`; with a configured key, only if its keyed seal
    is present and right (IntegrityError otherwise)."""
    token = text.decode(errors="replace").split(maxsplit=1)[0] if text.strip() else ""
    if len(token) != 64 or any(c not in "0123456789abcdef" for c in token):
        raise IntegrityError(f"the recorded sha256 of {where} is malformed")
    key = _seal_key()
    if key is not None:
        seals = [line.split()[1] for line in text.decode(errors="replace").splitlines()[1:]
                 if len(line.split()) == 2 and line.split()[0] == _SEAL]
        if not seals:
            raise IntegrityError(f"the sidecar of {where} has no keyed seal, though {SEAL_KEY_ENV} is set: "
                                 "anyone could have written it; refusing to trust it")
        if not hmac.compare_digest(seals[0], _seal(token, name, key)):
            raise IntegrityError(f"the sidecar of {where} has a wrong keyed seal: it was written without "
                                 f"the key ({SEAL_KEY_ENV}); refusing to trust it")
    return token


def _name(uri: str) -> str:
    return uri.rstrip("/").rsplit("/", 1)[-1]


def _sidecar_text(sha: str, uri: str) -> bytes:
    return sidecar_text(sha, _name(uri)).encode()


def _parse_sidecar(text: bytes, uri: str) -> str:
    return sidecar_sha256(text, _name(uri), uri)


# --- raw objects (no hashing): whatever the URI's backend stores -----------------------------

def list_uris(prefix: str) -> list[str]:
    """The URIs of every object below the folder `prefix` (sidecars included), sorted."""
    return backend_for(prefix).list(prefix)


def get_unverified_bytes(uri: str) -> bytes:
    """The bytes at `uri` without a sha256 check, for data published without sidecars."""
    return backend_for(uri).read_bytes(uri)


def delete(uri: str) -> None:
    """Remove the artifact at `uri` and its sidecar; nothing happens when there is none."""
    backend = backend_for(uri)
    backend.delete(sidecar_uri(uri))  # the sidecar first: a half-deleted artifact reads as untrusted
    backend.delete(uri)


# --- verified artifacts ---------------------------------------------------------------------

def put_file(src: str | Path, uri: str) -> str:
    """Store the local file `src` at `uri` (multipart on S3 when large); returns its sha256."""
    src = Path(src)
    if not src.is_file():
        raise StorageError(f"no file to store at {src}")
    sha = sha256_file(src)
    backend = backend_for(uri)
    backend.upload_file(src, uri)
    backend.write_bytes(sidecar_uri(uri), _sidecar_text(sha, uri))
    return sha


def put_bytes(data: bytes, uri: str) -> str:
    sha = hashlib.sha256(data).hexdigest()
    backend = backend_for(uri)
    backend.write_bytes(uri, data)
    backend.write_bytes(sidecar_uri(uri), _sidecar_text(sha, uri))
    return sha


def recorded_sha256(uri: str) -> str:
    """The sha256 stored beside the artifact at `uri`."""
    try:
        text = backend_for(uri).read_bytes(sidecar_uri(uri))
    except ArtifactNotFoundError as exc:
        if exists(uri):
            raise IntegrityError(f"{uri} has no recorded sha256; refusing to trust it") from exc
        raise ArtifactNotFoundError(f"no artifact at {uri}") from exc
    return _parse_sidecar(text, uri)


def exists(uri: str) -> bool:
    return backend_for(uri).exists(uri)


def _check(actual: str, expected: str, uri: str) -> None:
    if actual != expected:
        raise IntegrityError(f"{uri} is corrupt or was altered: sha256 {actual[:12]}... differs from "
                             f"the recorded {expected[:12]}...")


def seal_local_file(path: str | Path) -> str:
    """Write the sidecar of a local file the caller has just written itself; returns its sha256."""
    sha = sha256_file(path)
    backend_for(str(path)).write_bytes(sidecar_uri(str(path)), _sidecar_text(sha, str(path)))
    return sha


def verify_local_file(path: str | Path) -> str:
    """Check a local file against its sidecar (a missing one is refused); returns its sha256."""
    expected = recorded_sha256(str(path))
    _check(sha256_file(path), expected, str(path))
    return expected


def get_file(uri: str, dest: str | Path, *, expected_sha256: str | None = None) -> Path:
    """Copy the artifact to `dest` after checking its sha256; `dest` is untouched on a mismatch."""
    expected = recorded_sha256(uri)
    if expected_sha256 is not None:
        _check(expected, expected_sha256, uri)
    dest = Path(dest)
    try:
        tmp = temp_beside(dest)
    except OSError as exc:
        raise StorageError(f"cannot write {dest}: {exc.strerror or exc}") from exc
    try:
        backend_for(uri).download_file(uri, tmp)
        _check(sha256_file(tmp), expected, uri)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def get_bytes(uri: str) -> bytes:
    expected = recorded_sha256(uri)
    data = backend_for(uri).read_bytes(uri)
    _check(hashlib.sha256(data).hexdigest(), expected, uri)
    return data


def put_dir(src_dir: str | Path, uri: str) -> dict[str, str]:
    """Store every file under `src_dir` below `uri`; returns the manifest (relative path -> sha256)."""
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise StorageError(f"no directory to store at {src_dir}")
    files = sorted(p for p in src_dir.rglob("*") if p.is_file() and not p.name.endswith(SIDECAR_SUFFIX))
    manifest = {}
    for path in files:
        relative = path.relative_to(src_dir).as_posix()
        if relative == MANIFEST:
            continue
        manifest[relative] = put_file(path, join_uri(uri, relative))
    put_bytes(json.dumps({"files": manifest}, indent=1, sort_keys=True).encode(), join_uri(uri, MANIFEST))
    return manifest


def get_dir(uri: str, dest_dir: str | Path) -> Path:
    """Download a directory stored by `put_dir`, verifying every file against its manifest."""
    try:
        manifest = json.loads(get_bytes(join_uri(uri, MANIFEST)))["files"]
    except ArtifactNotFoundError as exc:
        raise ArtifactNotFoundError(f"no stored directory at {uri} (no {MANIFEST})") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"the manifest of {uri} is malformed") from exc
    if not isinstance(manifest, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in manifest.items()):
        raise IntegrityError(f"the manifest of {uri} is malformed: its files are not path -> sha256")
    dest_dir = Path(dest_dir)
    for relative, sha in manifest.items():
        target = (dest_dir / relative).resolve()
        if dest_dir.resolve() not in target.parents:
            raise IntegrityError(f"the manifest of {uri} names a path outside the directory: {relative}")
        get_file(join_uri(uri, relative), target, expected_sha256=sha)
        # The stored sidecar, written beside the verified copy too: a model directory (whose own
        # sidecars put_dir stores as its files' sidecars, the same text) comes back loadable.
        target.with_name(target.name + SIDECAR_SUFFIX).write_bytes(_sidecar_text(sha, str(target)))
    return dest_dir
