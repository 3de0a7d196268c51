"""Long run of the sync-safety model (issue 12), not part of CI.

    PYTHONPATH=. python bench/sync_soak.py [--sequences 200] [--steps 30] [--minutes 0]
                                           [--shrink]

Runs :class:`tests.sync_safety.model.SyncModel` (a real ``twistd caddy`` ``file_sync``
server and two real ``synclient`` clients driven through random user edits, ignore-rule
changes, symlinked folders, an unmounted server disk and SIGKILLs) for many sequences,
then prints how many sequences and steps ran, how long it took and whether an invariant
broke (the failing steps are printed by hypothesis). ``--minutes`` stops starting new
batches of 5 sequences after that long (0: no limit). Exit status 1 when an invariant broke.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BATCH = 5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sequences", type=int, default=200)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--minutes", type=float, default=0.0)
    parser.add_argument("--shrink", action="store_true", help="shrink a failure (slow)")
    args = parser.parse_args()
    os.environ["CADDYTW_SOAK"] = "1"
    os.environ["CADDYTW_SOAK_EXAMPLES"] = str(args.sequences)
    os.environ["CADDYTW_SOAK_STEPS"] = str(args.steps)
    if args.shrink:
        os.environ["CADDYTW_SOAK_SHRINK"] = "1"

    from hypothesis import settings
    from hypothesis.stateful import run_state_machine_as_test

    from tests.sync_safety.model import SyncModel, profile

    deadline = time.monotonic() + args.minutes * 60 if args.minutes else None
    started = time.monotonic()
    broke = False
    SyncModel.sequences = SyncModel.steps = 0
    # Batches of a few sequences, so --minutes is checked between batches.
    with tempfile.TemporaryDirectory(prefix="sync-soak-") as base:
        SyncModel.base = Path(base)
        while SyncModel.sequences < args.sequences and not broke:
            if deadline is not None and time.monotonic() > deadline:
                break
            batch = min(BATCH, args.sequences - SyncModel.sequences)
            try:
                run_state_machine_as_test(
                    SyncModel, settings=settings(profile(), max_examples=batch)
                )
            except Exception:
                traceback.print_exc()
                broke = True
    minutes = (time.monotonic() - started) / 60
    print(
        f"sync soak: {SyncModel.sequences} sequences, {SyncModel.steps} actions in "
        f"{minutes:.1f} min; {'an invariant BROKE' if broke else 'every invariant held'}"
    )
    return 1 if broke else 0


if __name__ == "__main__":
    raise SystemExit(main())
