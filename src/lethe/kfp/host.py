"""Is the KFP API there? Checked in seconds, before the pipelines (and kfp) are imported.

kfp's client retries an unreachable host for most of a minute and prints each retry; `check_host`
refuses a malformed URL, a name that does not resolve and a port that takes no connection within
`CONNECT_SECONDS`, in one line. A host that accepts the connection is left to kfp's client (its
answer may take longer: authentication, a busy API server). No stdlib import here reaches kfp.
"""

from __future__ import annotations

import socket
import threading
import urllib.parse
import urllib.request

from lethe.errors import PipelineError

CONNECT_SECONDS = 2.0


def _connect(host: str, port: int, result: list[BaseException | None]) -> None:
    try:
        with socket.create_connection((host, port), timeout=CONNECT_SECONDS):
            result.append(None)
    except OSError as exc:
        result.append(exc)


def check_host(url: str) -> str:
    """`url` (the KFP API, e.g. http://ml-pipeline.kubeflow:8888) when it takes a connection; else a
    one-line PipelineError. Behind an HTTP proxy the proxy is kfp's to reach: only the URL is checked."""
    parsed = urllib.parse.urlsplit(url.strip())
    try:
        port = parsed.port
    except ValueError:
        port = -1
    if parsed.scheme not in ("http", "https") or not parsed.hostname or port == -1:
        raise PipelineError("--host must be the KFP API's http(s) URL, e.g. "
                            f"http://ml-pipeline.kubeflow:8888, not {url[:80]!r}")
    port = port or (443 if parsed.scheme == "https" else 80)
    if urllib.request.getproxies().get(parsed.scheme) and not urllib.request.proxy_bypass(parsed.hostname):
        return url
    result: list[BaseException | None] = []
    # A resolver can hang far longer than a connect timeout: wait for the attempt, not for the resolver.
    attempt = threading.Thread(target=_connect, args=(parsed.hostname, port, result), daemon=True)
    attempt.start()
    attempt.join(CONNECT_SECONDS + 0.5)
    if not result:
        raise PipelineError(f"cannot reach the KFP API at {url}: no answer within {CONNECT_SECONDS:g} s; "
                            "nothing was sent")
    if result[0] is not None:
        error = result[0]
        reason = error.strerror or str(error) if isinstance(error, OSError) else str(error)
        raise PipelineError(f"cannot reach the KFP API at {url}: {reason or type(error).__name__}; "
                            "nothing was sent")
    return url
