"""Screenshots of the demo's report and of the API reference's front page, taken by
headless Chromium with a window 1280 px wide (Debian: `apt-get install chromium`).

    tf-signsal demo                      # writes runs/signsal-demo/report.html
    python docs/build.py                 # writes docs/api/index.html
    python docs/screenshots.py           # writes docs/screenshots/*.png

Writes in `--out` (docs/screenshots): `report.png`, the report's first screen
(1280 x 900, a laptop's); `report_full.png`, the whole report at 1280 px, halved to
640 px wide to keep the file small; and `api.png`, the reference's front page
(1280 x 900).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
WIDTH, SCREEN = 1280, 900
_TALLEST = 30000  # px: the window of the whole-page shot, cropped to the page after


def chromium() -> str:
    """The Chromium executable, or SystemExit saying how to install it."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no headless browser found: apt-get install chromium")


def screenshot(page: Path, out: Path, height: int) -> None:
    """`page` (an HTML file) as Chromium shows it in a window WIDTH x `height`, into `out`."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={profile}", f"--window-size={WIDTH},{height}",
             f"--screenshot={out}", page.resolve().as_uri()],
            check=True, capture_output=True, timeout=120,
        )


def whole_page(page: Path, out: Path) -> None:
    """The whole of `page` at WIDTH px, cropped below its last non-white row, halved."""
    screenshot(page, out, _TALLEST)
    with Image.open(out) as shot:
        gray = np.asarray(shot.convert("L"))
        rows = np.flatnonzero(gray.min(axis=1) < 250)
        bottom = min(gray.shape[0], int(rows.max()) + 40) if rows.size else gray.shape[0]
        cropped = shot.crop((0, 0, WIDTH, bottom))
        halved = cropped.resize((WIDTH // 2, bottom // 2), Image.LANCZOS)
        halved.quantize(256).save(out, optimize=True)  # a palette: a third of the bytes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", default=str(ROOT / "runs" / "signsal-demo" / "report.html"))
    parser.add_argument("--api", default=str(ROOT / "docs" / "api" / "index.html"))
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args(argv)
    report, api, out = Path(args.report), Path(args.api), Path(args.out)
    for page, how in ((report, "tf-signsal demo"), (api, "python docs/build.py")):
        if not page.is_file():
            raise SystemExit(f"{page} is not a file: run `{how}` first")
    os.makedirs(out, exist_ok=True)
    screenshot(report, out / "report.png", SCREEN)
    whole_page(report, out / "report_full.png")
    screenshot(api, out / "api.png", SCREEN)
    for name in ("report.png", "report_full.png", "api.png"):
        print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
