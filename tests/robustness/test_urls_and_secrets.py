"""URLs in settings and flags: one parser, one line, and never the password, whatever it holds."""

from __future__ import annotations

import pytest

from lethe.errors import ConfigError
from lethe.redact import check_url, mask_credentials
from tests.robustness.conftest import AttackHome, run_in_process

PASSWORDS = ["S3cretPW", "pa'ss", 'pa"ss', "p@ss@word", "pa/ss", "pa:ss", "pa%20ss'x", "pä\\ss", "#?%40"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_a_password_is_masked_whatever_it_holds(password: str) -> None:
    for url in (f"postgresql://lethe:{password}@db:5432/lethe", f"http://u:{password}@127.0.0.1:abc"):
        text = f"ledger database {url!r} failed: 'x' (see {url})"
        masked = mask_credentials(text)
        assert password not in masked and "***" in masked, masked


@pytest.mark.parametrize(("url", "fragment"), [
    ("postgresql://lethe:S3cretPW@127.0.0.1:abc/lethe", "port"),
    ("postgresql://lethe:S3cretPW@127.0.0.1:99999/lethe", "port"),
    ("http://u:S3cretPW@127.0.0.1:-1", "port"),
    ("http://127.0.0.1:5000/\x1b[31m", "control characters"),
])
def test_check_url_refuses_in_one_line_without_the_password(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as caught:
        check_url(url, "the ledger URL")
    assert "S3cretPW" not in str(caught.value) and "\n" not in str(caught.value)


def test_good_urls_pass() -> None:
    for url in ("sqlite:///x/l.db", "postgresql+psycopg://u:p@h:5432/d", "http://h:5000", "file:///x",
                "x.db"):
        assert check_url(url, "u") == url


@pytest.mark.parametrize(("argv", "env"), [
    (["request", "list", "--ledger", "postgresql://lethe:S3cretPW@127.0.0.1:abc/lethe"], {}),
    (["request", "list"], {"LETHE_LEDGER_URL": "postgresql://lethe:pa'S3cretPW@127.0.0.1:abc/lethe"}),
    (["review", "list", "--tracking-uri", "http://u:S3cretPW'@127.0.0.1:abc"], {}),
    (["review", "list"], {"LETHE_TRACKING_URI": "http://u:S3cretPW@@127.0.0.1:70000"}),
    (["request", "list", "--ledger", "postgresql://lethe:S3cretPW'@127.0.0.1:1/lethe"], {}),
])
def test_the_cli_never_echoes_a_password(attack_home: AttackHome, argv: list[str],
                                         env: dict[str, str]) -> None:
    result = run_in_process(argv, {**attack_home.env, **env})
    assert result.code == 2 and "Traceback" not in result.err, result.err
    assert len(result.err.splitlines()) == 1 and "S3cretPW" not in result.err + result.out, result.err
