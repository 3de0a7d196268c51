"""Regenerate golden JSON with Debian's caddy (run once; outputs are committed).

Usage: ``python tests/caddyfile/gen_golden.py [NAME ...]``. Runs
``caddy adapt --config NAME.Caddyfile --adapter caddyfile`` inside the
golden directory with GOLDEN_ENV set, and writes NAME.json (sorted, pretty).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_ENV = {"SITE_ADDR": "env.example.com", "UPSTREAM": "127.0.0.1:9100"}


def main(names: list[str]) -> int:
    files = [GOLDEN / f"{n}.Caddyfile" for n in names] or sorted(GOLDEN.glob("*.Caddyfile"))
    env = {k: v for k, v in os.environ.items() if k not in ("GREETING", "NOT_SET_ANYWHERE")}
    env.update(GOLDEN_ENV)
    status = 0
    for path in files:
        proc = subprocess.run(
            ["caddy", "adapt", "--config", path.name, "--adapter", "caddyfile"],
            cwd=GOLDEN,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if proc.returncode != 0:
            print(f"{path.name}: caddy failed: {proc.stderr.strip()}", file=sys.stderr)
            status = 1
            continue
        data = json.loads(proc.stdout)
        path.with_suffix(".json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
