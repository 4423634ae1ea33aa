"""Keep secrets and personal ids out of messages and logs.

`mask_credentials` hides the password (or token) of every URL in a text; `Redactor` replaces given
values (subject ids, sample ids) wherever they occur, raw or as JSON escapes them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from lethe.errors import ConfigError

# scheme://user:secret@host or scheme://token@host: everything between "//" and the last "@" of the
# URL is credentials, whatever it holds (a password may contain ', ", /, : or @).
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>\S+)@")
MASK = "***"
REDACTED = "<redacted>"


def _mask_userinfo(match: re.Match[str]) -> str:
    user, sep, _secret = match.group("userinfo").partition(":")
    return f"{match.group('scheme')}{user}:{MASK}@" if sep else f"{match.group('scheme')}{MASK}@"


def mask_credentials(text: str) -> str:
    """`text` with the password or token of every URL replaced by ***."""
    return _URL_CREDENTIALS.sub(_mask_userinfo, str(text))


#: Schemes that name a server: their URLs must name a host.
SERVER_SCHEMES = ("http", "https", "postgresql", "postgres")
#: A DNS name, an IPv4 address or (urllib drops the brackets) an IPv6 address.
_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+(%[A-Za-z0-9._~-]+)?")


def check_url(url: str, what: str) -> str:
    """`url` (a ledger, tracking or storage URL) if it parses: no control character, a port that is a
    number from 1 to 65535 and, for a server, a host name and no '@' after it (an unencoded '/', '?'
    or '#' in a password); else one ConfigError line that names `what`, without the password."""
    text = str(url)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ConfigError(f"{what} holds control characters: {mask_url(text)!r}")
    if "://" not in text:
        return text
    parts = urlsplit(text)
    server = parts.scheme.split("+")[0] in SERVER_SCHEMES
    if server and "@" in text[len(parts.scheme) + 3 + len(parts.netloc):]:
        # urllib ends the credentials at a "/", "?" or "#"; the next client may read the rest as the
        # host (and echo the password in its error).
        raise ConfigError(f"{what} {mask_url(text)}: an '@' after the host; percent-encode "
                          "'/', '?', '#' and '@' in a user name or password")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ConfigError(f"{what} {mask_url(text)}: the port is not a number from 1 to 65535")
    if server:
        if not parts.hostname:
            raise ConfigError(f"{what} {mask_url(text)} names no host")
        if not _HOST.fullmatch(parts.hostname):
            raise ConfigError(f"{what} {mask_url(text)}: {parts.hostname[:40]!r} is not a host name")
    return text


def mask_url(url: str) -> str:
    """One URL with everything between "//" and its last "@" masked, spaces in a password included
    (`mask_credentials` finds URLs in free text, where a space ends them)."""
    scheme, sep, rest = str(url).partition("://")
    if not sep or "@" not in rest:
        return mask_credentials(url)
    userinfo, _, host = rest.rpartition("@")
    user, colon, _secret = userinfo.partition(":")
    return f"{scheme}://{user}:{MASK}@{host}" if colon else f"{scheme}://{MASK}@{host}"


class Redactor:
    """Replaces each given value (and its JSON-escaped form) in a text by `<redacted>`.

    Values shorter than 6 characters are replaced only as whole tokens: a subject "7" must not
    blank every 7 in a log."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for value in values:
            text = str(value)
            if text.strip():
                forms.add(text)
                forms.add(json.dumps(text)[1:-1])  # "Zoë" appears as "Zo\u00eb" in a JSON dump
        ordered = sorted(forms, key=len, reverse=True)
        long = [re.escape(v) for v in ordered if len(v) >= 6]
        short = [rf"(?<![\w-]){re.escape(v)}(?![\w-])" for v in ordered if len(v) < 6]
        self._pattern = re.compile("|".join(long + short)) if forms else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern is not None else text
