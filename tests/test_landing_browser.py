"""The landing page in a real browser: headless Chromium loads it from a served Flask app,
takes a screenshot (kept as artifacts/landing.png) and dumps the DOM it rendered."""

import os
import struct
import zlib
from html.parser import HTMLParser

import numpy as np
import pytest

from promdrift.instrumentation import collector_for

from browser import CHROMIUM, chromium, console_messages, penguins_app
from integration.servers import AppServer
from pngfile import PNGError, read_png, size

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian package chromium; "
                             "`make system-deps` installs it)")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACT = os.path.join(ROOT, "artifacts", "landing.png")
WIDTH, HEIGHT = 1280, 2000
BASELINE_RGB, LIVE_RGB = (0x56, 0xB4, 0xE9), (0xD5, 0x5E, 0x00)

BROKEN = ('<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>broken</title>'
          '</head><body><svg class="hist" width="10" height="10"><rect height="-1" width="5"/>'
          '</svg></body></html>')


class Elements(HTMLParser):
    """Counts elements of the DOM Chromium dumped: pictures, table rows, sections."""

    def __init__(self, text):
        super().__init__()
        self.hist, self.rows, self.models, self.bars = 0, [], [], 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg" and a.get("class") == "hist":
            self.hist += 1
        elif tag == "tr" and "data-column" in a:
            self.rows.append(a["data-column"])
        elif tag == "section":
            self.models.append(a["data-model"])
        elif tag == "rect" and a.get("class") in ("b", "l"):
            self.bars += 1


@pytest.fixture(scope="module")
def app():
    return penguins_app(extra_models=True)


@pytest.fixture(scope="module")
def loaded(app, tmp_path_factory):
    """Chromium on the served page: a screenshot, then the DOM (separate runs: older
    Chromium builds do only one of the two per run), then the DOM of a broken page."""
    @app.get("/broken-svg")
    def broken():
        return BROKEN

    os.makedirs(os.path.dirname(ARTIFACT), exist_ok=True)
    if os.path.exists(ARTIFACT):
        os.remove(ARTIFACT)
    profile = str(tmp_path_factory.mktemp("chromium-profile"))
    with AppServer(app) as server:
        url = f"http://{server.address}/"
        shot = chromium(url, profile, screenshot=ARTIFACT, size=(WIDTH, HEIGHT))
        run = chromium(url, profile, dom=True, size=(WIDTH, HEIGHT))
        broken_run = chromium(url + "broken-svg", profile, dom=True)
    run.stderr = shot.stderr + run.stderr  # console messages of both loads
    assert shot.returncode == 0, shot.stderr[-2000:]
    return run, broken_run


@needs_chromium
def test_chromium_renders_one_picture_per_column_of_every_model(loaded, app):
    run, _ = loaded
    assert run.returncode == 0, run.stderr[-2000:]
    dom = Elements(run.dom)
    first = app.extensions["promdrift"]["landing"]["/"][0]
    monitors = collector_for(first.registry).monitors
    assert dom.models == [m.model for m in monitors] == ["penguins", "breast_cancer"]
    columns = [c.name for m in monitors for c in m.baseline.features + m.baseline.predictions]
    assert dom.rows == columns
    assert dom.hist == len(columns) == 8 + 31
    bins = sum(len(c.edges) + 1 if hasattr(c, "edges") else len(c.categories) + 1
               for m in monitors for c in m.baseline.features + m.baseline.predictions)
    assert dom.bars == 2 * bins


@needs_chromium
def test_no_console_errors(loaded):
    run, _ = loaded
    assert console_messages(run.stderr) == []


@needs_chromium
def test_the_console_check_sees_an_invalid_svg(loaded):
    """The same check on a page with a negative bar height: Chromium reports it."""
    _, broken = loaded
    assert broken.returncode == 0
    assert Elements(broken.dom).hist == 1
    messages = console_messages(broken.stderr)
    assert len(messages) == 1 and "negative value" in messages[0], messages


@needs_chromium
def test_the_screenshot_is_a_png_of_the_window_with_the_bars_drawn(loaded):
    run, _ = loaded
    assert os.path.isfile(ARTIFACT), run.stderr[-2000:]
    with open(ARTIFACT, "rb") as f:
        data = f.read()
    assert size(data) == [WIDTH, HEIGHT]
    px = read_png(data)[:, :, :3]
    assert px.shape == (HEIGHT, WIDTH, 3)
    flat = px.reshape(-1, 3)
    colours = np.unique(flat, axis=0)
    assert len(colours) > 100  # text anti-aliasing, bars, rules: not a blank page
    white = np.all(flat == 255, axis=1).mean()
    assert 0.5 < white < 0.98, white
    # The bars are painted in their exact colours, many pixels of each.
    assert np.all(px == BASELINE_RGB, axis=2).sum() > 5000
    assert np.all(px == LIVE_RGB, axis=2).sum() > 5000
    # ... in the picture column (right of the name, kind and numbers columns), all the way
    # down the page (the second model continues below the first). Left of it, live colour
    # is only the legend's 10 x 12 swatch, at the top.
    live = np.all(px == LIVE_RGB, axis=2)
    left = np.argwhere(live[:, :int(WIDTH * 0.3)])
    assert len(left) <= 10 * 12 and left[:, 0].max() < 200
    assert live[:, int(WIDTH * 0.3):].sum() > 5000
    assert np.flatnonzero(live.any(axis=1)).max() > HEIGHT * 0.9


# ------------------------------------------------------------ the PNG reader itself


def _encode(pixels, filters):
    """A PNG with the given per-row filter types (vectorised: predictors use raw bytes)."""
    h, w, c = pixels.shape
    raw = pixels.reshape(h, w * c).astype(np.int64)
    out = bytearray()
    for y in range(h):
        x = raw[y]
        up = raw[y - 1] if y else np.zeros_like(x)
        left = np.concatenate([np.zeros(c, np.int64), x[:-c]])
        ul = np.concatenate([np.zeros(c, np.int64), up[:-c]])
        k = filters[y]
        if k == 0:
            pred = 0
        elif k == 1:
            pred = left
        elif k == 2:
            pred = up
        elif k == 3:
            pred = (left + up) // 2
        else:
            p = left + up - ul
            pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - ul)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
        out.append(k)
        out += ((x - pred) % 256).astype(np.uint8).tobytes()

    def chunk(t, b):
        return struct.pack(">I", len(b)) + t + b + struct.pack(">I", zlib.crc32(t + b))

    colour = {3: 2, 4: 6}[c]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour,
                                                               0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b""))


@pytest.mark.parametrize("channels", [3, 4])
def test_png_reader_undoes_every_filter(channels):
    rng = np.random.default_rng(channels)
    pixels = rng.integers(0, 256, size=(25, 9, channels), dtype=np.uint8)
    data = _encode(pixels, [y % 5 for y in range(25)])
    np.testing.assert_array_equal(read_png(data), pixels)
    assert size(data) == [9, 25]
    with pytest.raises(PNGError, match="CRC"):
        read_png(data[:40] + bytes([data[40] ^ 1]) + data[41:])
    with pytest.raises(PNGError, match="signature"):
        read_png(b"GIF89a" + data[6:])
