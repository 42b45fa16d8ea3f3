"""QR codes as lines of text for a terminal: two module rows per line with half blocks, so a
phone can scan a device sign-in address straight off an SSH session."""

from __future__ import annotations

import qrcode  # type: ignore[import-untyped]
from qrcode.constants import ERROR_CORRECT_L  # type: ignore[import-untyped]

QUIET_ZONE = 2
"""Light modules around the code. The standard asks for 4; scanners read 2 reliably, and the
smaller code fits an 80×24 terminal."""

# (top light, bottom light) -> character. The characters draw the LIGHT modules, so show the
# lines light-on-dark (e.g. white on black): dark modules are then the dark background.
_HALF_BLOCKS = {
    (True, True): "█",
    (True, False): "▀",
    (False, True): "▄",
    (False, False): " ",
}


def qr_lines(text: str) -> list[str]:
    """`text` as a QR code (smallest version, low error correction) with a quiet zone: equal-length
    lines of `▀▄█` and spaces that draw the light modules."""
    code = qrcode.QRCode(border=QUIET_ZONE, error_correction=ERROR_CORRECT_L)
    code.add_data(text)
    code.make(fit=True)
    dark: list[list[bool]] = code.get_matrix()
    light = [[not module for module in row] for row in dark]
    if len(light) % 2:
        # The last line's lower half lies outside the code: leave it to the background.
        light.append([False] * len(light[0]))
    return [
        "".join(_HALF_BLOCKS[top, bottom] for top, bottom in zip(upper, lower, strict=True))
        for upper, lower in zip(light[::2], light[1::2], strict=True)
    ]
