"""What a one-shot client loads: ``--once`` and ``--initial-sync`` runs start many
times a day from scripts, and their start-up is part of every initial sync's time."""

from __future__ import annotations

import subprocess
import sys

from tests.support.server import REPO, server_env


def test_a_one_shot_run_does_not_load_the_events_websocket() -> None:
    """The modules a ``--once`` run uses (the service's ``build``, the engine, the
    applier) do not pull in autobahn: only a client that keeps running opens the
    events WebSocket."""
    probe = (
        "import sys\n"
        "import synclient.cli, synclient.service, synclient.engine, synclient.apply\n"
        "print(','.join(m for m in ('autobahn', 'synclient.events') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=server_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == ""
