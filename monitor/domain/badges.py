"""Status badges as SVG: a grey label and a coloured message, in the shields.io flat style.

Pure: text in, SVG text out, from one template. Text is measured with a per-character width
table (Verdana at 11 px, the font badges name first), so a badge fits its words without a
font on the server; viewers without Verdana fall back to similar sans fonts, and
`textLength` keeps the text inside its box whatever font draws it.
"""

from __future__ import annotations

import math
from html import escape

from monitor.domain.evidence import CLASS_COLOUR, NO_DATA, OutcomeClass
from monitor.domain.history import state_class

LABEL_COLOUR = "#555"
PADDING = 6  # px either side of each text
# The uptime a badge shows green (ok) and amber (transient) from; below, red (contract).
UPTIME_OK = 0.99
UPTIME_WARN = 0.95

# Advance widths in px of Verdana at 11 px for printable ASCII; anything else counts as WIDE.
_WIDTHS = {
    " ": 3.87, "!": 4.33, '"': 5.05, "#": 9.0, "$": 7.0, "%": 11.84, "&": 7.99, "'": 2.95,
    "(": 4.99, ")": 4.99, "*": 7.0, "+": 9.0, ",": 4.0, "-": 4.99, ".": 4.0, "/": 4.99,
    ":": 4.99, ";": 4.99, "<": 9.0, "=": 9.0, ">": 9.0, "?": 6.0, "@": 11.0,
    "[": 4.99, "\\": 4.99, "]": 4.99, "^": 9.0, "_": 7.0, "`": 7.0,
    "{": 6.98, "|": 4.99, "}": 6.98, "~": 9.0,
    "A": 7.52, "B": 7.54, "C": 7.68, "D": 8.48, "E": 6.96, "F": 6.32, "G": 8.53, "H": 8.27,
    "I": 4.63, "J": 5.0, "K": 7.62, "L": 6.12, "M": 9.27, "N": 8.23, "O": 8.66, "P": 6.63,
    "Q": 8.66, "R": 7.65, "S": 7.52, "T": 6.78, "U": 8.05, "V": 7.52, "W": 10.88, "X": 7.54,
    "Y": 6.77, "Z": 7.54,
    "a": 6.61, "b": 6.85, "c": 5.73, "d": 6.85, "e": 6.55, "f": 3.87, "g": 6.85, "h": 6.96,
    "i": 3.02, "j": 3.79, "k": 6.51, "l": 3.02, "m": 10.7, "n": 6.96, "o": 6.68, "p": 6.85,
    "q": 6.85, "r": 4.69, "s": 5.73, "t": 4.33, "u": 6.96, "v": 6.51, "w": 8.98, "x": 6.51,
    "y": 6.51, "z": 5.78,
}  # fmt: skip
_WIDTHS.update(dict.fromkeys("0123456789", 7.0))
WIDE = 11.0

_TEMPLATE = """\
<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" \
aria-label="{title}">
<title>{title}</title>
<linearGradient id="s" x2="0" y2="100%">
<stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/>
</linearGradient>
<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath>
<g clip-path="url(#r)">
<rect width="{label_box}" height="20" fill="{label_colour}"/>
<rect x="{label_box}" width="{message_box}" height="20" fill="{colour}"/>
<rect width="{width}" height="20" fill="url(#s)"/>
</g>
<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" \
font-size="11">
<text x="{label_x}" y="15" fill="#010101" fill-opacity=".3" textLength="{label_width}">\
{label}</text>
<text x="{label_x}" y="14" textLength="{label_width}">{label}</text>
<text x="{message_x}" y="15" fill="#010101" fill-opacity=".3" textLength="{message_width}">\
{message}</text>
<text x="{message_x}" y="14" textLength="{message_width}">{message}</text>
</g>
</svg>
"""


def text_width(text: str) -> float:
    """The text's width in px at 11 px Verdana, from the width table."""
    return sum(_WIDTHS.get(char, WIDE) for char in text)


def badge(label: str, message: str, colour: str) -> str:
    """One badge: `label` on grey, `message` on `colour`; both escaped for XML."""
    label_width = round(text_width(label), 1)
    message_width = round(text_width(message), 1)
    label_box = math.ceil(label_width) + 2 * PADDING
    message_box = math.ceil(message_width) + 2 * PADDING
    return _TEMPLATE.format(
        width=label_box + message_box,
        title=escape(f"{label}: {message}"),
        label=escape(label),
        message=escape(message),
        label_colour=LABEL_COLOUR,
        colour=colour,
        label_box=label_box,
        message_box=message_box,
        label_x=label_box / 2,
        message_x=label_box + message_box / 2,
        label_width=label_width,
        message_width=message_width,
    )


def state_badge(target: str, state: str | None) -> str:
    """The target's confirmed state, coloured by its class; grey "no data" before any."""
    return badge(target, state or "no data", CLASS_COLOUR[state_class(state)])


def uptime_text(uptime: float | None) -> str:
    """Rounded down to 0.01 %, so 99.999 % never shows as 100 %."""
    if uptime is None:
        return "no data"
    percent = math.floor(uptime * 10_000) / 100
    return f"{percent:.2f}".rstrip("0").rstrip(".") + "%"


def uptime_colour(uptime: float | None) -> str:
    if uptime is None:
        return CLASS_COLOUR[NO_DATA]
    if uptime >= UPTIME_OK:
        return CLASS_COLOUR[OutcomeClass.OK]
    if uptime >= UPTIME_WARN:
        return CLASS_COLOUR[OutcomeClass.TRANSIENT]
    return CLASS_COLOUR[OutcomeClass.CONTRACT]


def uptime_badge(window: str, uptime: float | None) -> str:
    """Uptime over `window` (24h, 7d, 30d): green from 99 %, amber from 95 %, else red."""
    return badge(f"uptime {window}", uptime_text(uptime), uptime_colour(uptime))
