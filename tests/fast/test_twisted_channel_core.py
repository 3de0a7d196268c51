"""The core request tests again with twisted.web's channel (``CADDYTW_HTTP1=twisted``).

The lean channel is the default, so the whole suite already runs on it; this keeps the
old channel honest as the fallback. The channel is chosen when a site is built, so the
tests run in a child pytest with the variable set.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.server import REPO, server_env

CORE_TESTS = ["tests/test_routing.py", "tests/test_placeholders.py"]


def test_core_request_tests_pass_on_the_twisted_channel() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CORE_TESTS],
        cwd=REPO,
        env=server_env({"CADDYTW_HTTP1": "twisted"}),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


def test_channel_choice_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from caddytw.http.channel import channel_protocol
    from caddytw.http.fastchannel import fast_channel_protocol
    from caddytw.http.site import http1_protocol

    monkeypatch.delenv("CADDYTW_HTTP1", raising=False)
    assert http1_protocol() is fast_channel_protocol
    monkeypatch.setenv("CADDYTW_HTTP1", "twisted")
    assert http1_protocol() is channel_protocol
    monkeypatch.setenv("CADDYTW_HTTP1", "bogus")
    with pytest.raises(ValueError, match="CADDYTW_HTTP1"):
        http1_protocol()
