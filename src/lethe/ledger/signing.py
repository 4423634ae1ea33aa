"""Tamper evidence for certificates: an Ed25519 signature with a key of its own (never the subject key).

The signature covers the certificate's fields other than `signature`, as canonical JSON (sorted keys, no
spaces, UTF-8), so it does not depend on the file's layout; `verify_certificate` needs the public key
alone. Keys are PEM files (`generate_key_pair`, `lethe request keygen`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from lethe.errors import LedgerError

ALGORITHM = "Ed25519"


def canonical(fields: dict[str, Any]) -> bytes:
    body = {k: v for k, v in fields.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _key_id(public_pem: bytes) -> str:
    return hashlib.sha256(public_pem).hexdigest()[:16]


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise LedgerError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def generate_key_pair(out_dir: str | Path) -> tuple[Path, Path]:
    """Write `certificate-key.pem` (private, mode 600) and `certificate-key.pub.pem` into `out_dir`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out = Path(out_dir)
    private, public = out / "certificate-key.pem", out / "certificate-key.pub.pem"
    if private.exists() or public.exists():
        raise LedgerError(f"{out} already holds a certificate key; nothing was written")
    key = Ed25519PrivateKey.generate()
    out.mkdir(parents=True, exist_ok=True)
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    private.chmod(0o600)
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def sign_fields(fields: dict[str, Any], private_key_path: str | Path) -> dict[str, str]:
    """The `signature` entry of a certificate's fields."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(_read(private_key_path, "certificate signing key"), None)
    except (ValueError, TypeError) as exc:
        raise LedgerError(f"the certificate signing key {private_key_path} is not a PEM private key: {exc}"
                          ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerError(f"the certificate signing key {private_key_path} is not an Ed25519 key")
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"algorithm": ALGORITHM, "key_id": _key_id(public),
            "value": base64.b64encode(key.sign(canonical(fields))).decode()}


def verify_certificate(document: bytes, public_key_path: str | Path) -> dict[str, Any]:
    """Check a certificate file's signature with the public key; returns its fields, or raises
    `LedgerError` saying in one line why it does not verify."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    pem = _read(public_key_path, "public key")
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise LedgerError(f"{public_key_path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise LedgerError(f"{public_key_path} is not an Ed25519 public key")
    try:
        fields = json.loads(document)
    except (ValueError, UnicodeDecodeError):
        raise LedgerError("the certificate is not JSON") from None
    signature = fields.get("signature") if isinstance(fields, dict) else None
    if not isinstance(signature, dict) or signature.get("algorithm") != ALGORITHM:
        raise LedgerError("the certificate carries no Ed25519 signature")
    if signature.get("key_id") != _key_id(pem):
        raise LedgerError("the certificate was signed with another key")
    try:
        key.verify(base64.b64decode(str(signature.get("value", "")), validate=True), canonical(fields))
    except (InvalidSignature, ValueError):
        raise LedgerError("the signature does not match the certificate: it was altered after signing"
                          ) from None
    return fields
