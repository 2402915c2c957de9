"""Regenerate docs/img/landing.png, the README's picture of the landing page.

    .venv/bin/python docs/img/make_screenshot.py [--width 1000] [--height 1010]

Serves the penguins model after every penguin was sent through it with drift (heavier
birds, an island the baseline never saw, a few unusable values; see tests/browser.py) on a
free 127.0.0.1 port, and takes a headless Chromium (Debian package ``chromium``) screenshot
of ``/``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests"))

from browser import chromium, console_messages, penguins_app  # noqa: E402
from integration.servers import AppServer  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=1000)
    ap.add_argument("--height", type=int, default=1010)
    ap.add_argument("-o", "--output", default=os.path.join(ROOT, "docs", "img", "landing.png"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as profile, AppServer(penguins_app()) as server:
        run = chromium(f"http://{server.address}/", profile, screenshot=args.output,
                       size=(args.width, args.height))
    errors = console_messages(run.stderr)
    if run.returncode != 0 or errors or not os.path.isfile(args.output):
        print(f"chromium failed (exit {run.returncode}): {errors}\n{run.stderr[-2000:]}",
              file=sys.stderr)
        return 1
    print(f"wrote {args.output} ({os.path.getsize(args.output):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
