"""Headless Chromium for the tests: a page's screenshot, and its DOM as the browser built it.

Chromium is the Debian package ``chromium``, which ``chaosmesh-sec lab build``
installs when it is missing (:data:`chaosmesh_sec.lab.hostdeps.REQUIRED`); without it
every function here raises :class:`BrowserError` saying so. Each call starts one
``chromium --headless=new`` with a throwaway profile (``--user-data-dir`` in a
temporary folder), ``--no-sandbox`` (the tests run as root) and a time limit; on
timeout its whole process group is killed.

A screenshot is checked before it is returned (:func:`read_png`): a PNG whose chunks
are intact (CRCs), of the requested size, and not blank (more than one distinct pixel
value), decoded with :mod:`zlib` alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CHROMIUM",
    "BrowserError",
    "Png",
    "chromium",
    "distinct_pixels",
    "read_png",
    "rendered_dom",
    "screenshot",
]

CHROMIUM = "chromium"
"""The command (Debian package ``chromium``)."""
TIMEOUT_S = 90.0
FLAGS = (
    "--headless=new",
    "--no-sandbox",  # root
    "--disable-gpu",
    "--disable-crash-reporter",  # no crashpad handler outside its process group
    "--disable-breakpad",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",  # a CSS pixel is a screenshot pixel
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


class BrowserError(RuntimeError):
    """Chromium is missing, failed, timed out, or wrote no usable screenshot."""


def chromium() -> str:
    """The path of the ``chromium`` command; BrowserError when it is not installed."""
    path = shutil.which(CHROMIUM)
    if path is None:
        raise BrowserError(
            "Chromium is not installed (no `chromium` on PATH): `chaosmesh-sec lab build` "
            "installs it, or `apt-get install chromium`"
        )
    return path


def _run(html: Path, flags: list[str], timeout: float) -> str:
    """Open `html` in headless Chromium with `flags`; its stdout."""
    if not html.is_file():
        raise FileNotFoundError(f"no page to open: {html}")
    exe = chromium()
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", *flags, html.resolve().as_uri()]
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: killed whole on timeout
            env=dict(os.environ, HOME=profile),
        )
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise BrowserError(
                f"Chromium did not finish in {timeout:g} s: {' '.join(cmd)}"
            ) from None
        finally:
            with contextlib.suppress(ProcessLookupError):  # what it left behind, ours alone
                os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip()[-1500:]
        raise BrowserError(f"Chromium exited {proc.returncode}: {' '.join(cmd)}\n{tail}")
    return out.decode("utf-8", errors="replace")


def rendered_dom(html: Path, timeout: float = TIMEOUT_S) -> str:
    """The page's DOM once Chromium has loaded it, serialized (``--dump-dom``)."""
    dom = _run(html, ["--dump-dom"], timeout)
    if "<html" not in dom.lower():
        raise BrowserError(f"Chromium dumped no document for {html}: {dom[:200]!r}")
    return dom


def screenshot(
    html: Path, png: Path, width: int = 1400, height: int = 2400, timeout: float = TIMEOUT_S
) -> Png:
    """Save the top `width` x `height` pixels of the page as `png`; return it, checked.

    BrowserError when the file is not a PNG of that size or is blank (a single pixel
    value).
    """
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    _run(html, [f"--window-size={width},{height}", f"--screenshot={png.resolve()}"], timeout)
    if not png.is_file():
        raise BrowserError(f"Chromium wrote no screenshot of {html} at {png}")
    image = read_png(png)
    if (image.width, image.height) != (width, height):
        raise BrowserError(
            f"{png} is {image.width}x{image.height} pixels, not the {width}x{height} asked for"
        )
    if distinct_pixels(image, enough=2) < 2:
        raise BrowserError(f"{png} is blank: every pixel has the same value")
    return image


# ---------------------------------------------------------------- PNG, without Pillow


@dataclass(frozen=True)
class Png:
    """A PNG's header and its image data, inflated (still filtered, a byte per row first)."""

    path: Path
    width: int
    height: int
    bit_depth: int
    colour_type: int
    raw: bytes

    @property
    def pixel_bytes(self) -> int:
        """Bytes per pixel (8 and 16 bit images only)."""
        return CHANNELS[self.colour_type] * self.bit_depth // 8

    @property
    def stride(self) -> int:
        """Bytes per row, with its filter-type byte."""
        return 1 + self.width * self.pixel_bytes


def read_png(path: Path) -> Png:
    """Parse and check `path`: signature, chunk CRCs, IHDR first, IEND last, the image data's size.

    BrowserError on anything else than an 8 or 16 bit, non-interlaced PNG, intact.
    """
    data = path.read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise BrowserError(f"{path} is not a PNG (signature {data[:8]!r})")
    chunks: list[tuple[bytes, bytes]] = []
    pos = len(PNG_SIGNATURE)
    while pos < len(data):
        if pos + 12 > len(data):
            raise BrowserError(f"{path}: truncated chunk at byte {pos}")
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length] or b"\0\0\0\0")
        if len(body) != length or zlib.crc32(kind + body) != crc:
            raise BrowserError(f"{path}: chunk {kind!r} at byte {pos} is truncated or corrupt")
        chunks.append((kind, body))
        pos += 12 + length
    kinds = [k for k, _ in chunks]
    if not kinds or kinds[0] != b"IHDR" or kinds[-1] != b"IEND" or b"IDAT" not in kinds:
        raise BrowserError(f"{path}: chunks out of order or missing: {kinds}")
    width, height, depth, colour, _compression, _filter, interlace = struct.unpack(
        ">IIBBBBB", chunks[0][1]
    )
    if depth not in (8, 16) or colour not in CHANNELS or interlace:
        raise BrowserError(
            f"{path}: unsupported PNG (bit depth {depth}, colour type {colour}, "
            f"interlace {interlace})"
        )
    try:
        raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    except zlib.error as exc:
        raise BrowserError(f"{path}: image data does not inflate: {exc}") from exc
    image = Png(path, width, height, depth, colour, raw)
    if len(raw) != height * image.stride:
        raise BrowserError(f"{path}: {len(raw)} bytes of image data, not {height * image.stride}")
    if any(f > 4 for f in raw[:: image.stride]):
        raise BrowserError(f"{path}: a row has an unknown filter type")
    return image


def distinct_pixels(image: Png, enough: int | None = None) -> int:
    """How many distinct pixel values `image` has; stops counting at `enough` (None: all).

    Rows are unfiltered (PNG filters None, Sub, Up, Average, Paeth) one after the
    other, each from the one above it, so stopping early spares decoding the rest.
    """
    bpp, stride = image.pixel_bytes, image.stride
    seen: set[bytes] = set()
    prior = bytes(stride - 1)
    for row in range(image.height):
        line = image.raw[row * stride : (row + 1) * stride]
        prior = _unfilter(line[0], line[1:], prior, bpp)
        seen.update(prior[i : i + bpp] for i in range(0, len(prior), bpp))
        if enough is not None and len(seen) >= enough:
            break
    return len(seen)


def _unfilter(kind: int, line: bytes, prior: bytes, bpp: int) -> bytes:
    if kind == 0:
        return line
    if kind == 2:
        return bytes((a + b) & 0xFF for a, b in zip(line, prior, strict=True))
    out = bytearray(line)
    for i in range(len(out)):
        left = out[i - bpp] if i >= bpp else 0
        if kind == 1:
            guess = left
        elif kind == 3:
            guess = (left + prior[i]) >> 1
        else:  # 4: Paeth
            up, corner = prior[i], prior[i - bpp] if i >= bpp else 0
            p = left + up - corner
            pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
            guess = left if pa <= pb and pa <= pc else up if pb <= pc else corner
        out[i] = (out[i] + guess) & 0xFF
    return bytes(out)
