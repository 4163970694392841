"""`[theme]`: a newsletter's brand without editing templates.

Pure: colours in, colours out. `Theme` holds what the site set, checked (`theme_problems`);
`Palette` is every colour the templates use, light and dark, derived from the theme's
accent, background and text; `contrast_pairs` is what the quality gate checks (text
needs 4.5:1, WCAG AA, in both modes).
"""

from __future__ import annotations

import colorsys
import re
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup

HEX = re.compile(r"#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
FONT_STACK = re.compile(r"[\w\s,.'\"-]{1,200}")
MIN_CONTRAST = 4.5
COLOUR_KEYS = ("theme.accent", "theme.background", "theme.text")
URL_KEYS = ("theme.logo", "theme.header_image")
FOOTER_TAGS = frozenset({"a", "b", "strong", "i", "em", "br", "span"})
FOOTER_SCHEMES = ("https", "http", "mailto")
FOOTER_DROPPED = frozenset({"script", "style", "title", "head"})  # text and all
DEFAULTS: dict[str, Any] = {
    "theme.logo": "", "theme.logo_width": 160, "theme.accent": "#0b57d0",
    "theme.background": "#ffffff", "theme.text": "#1f2328",
    "theme.font_stack": "-apple-system, 'Segoe UI', Helvetica, Arial, sans-serif",
    "theme.header_image": "", "theme.footer_html": "",
}


def theme_problems(values: Mapping[str, Any]) -> list[str]:
    """Every bad `[theme]` value, named: colour syntax, https only, a sane width and font."""
    problems = [f"{key} must be a CSS hex colour such as #0b57d0, not {values[key]!r}"
                for key in COLOUR_KEYS if not HEX.fullmatch(values[key])]
    problems += [f"{key} must be an https:// address, not {values[key]!r}"
                 for key in URL_KEYS if values[key] and not is_https(values[key])]
    if not 16 <= values["theme.logo_width"] <= 600:
        problems.append(f"theme.logo_width must be 16 to 600 (pixels), not "
                        f"{values['theme.logo_width']}")
    if not FONT_STACK.fullmatch(values["theme.font_stack"]):
        problems.append("theme.font_stack must be a list of font names (letters, digits, "
                        f"spaces, quotes, commas and hyphens), not {values['theme.font_stack']!r}")
    return problems


def is_https(value: str) -> bool:
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname) and not re.search(r"[\s\"'<>]", value)


RGB = tuple[float, float, float]


def rgb(colour: str, under: RGB = (1.0, 1.0, 1.0)) -> RGB:
    """`#abc`, `#abcd`, `#aabbcc` or `#aabbccdd` as 0..1 channels, alpha composited `under`."""
    digits = colour.lstrip("#")
    if len(digits) in (3, 4):
        digits = "".join(c * 2 for c in digits)
    channels = [int(digits[i:i + 2], 16) / 255 for i in range(0, len(digits), 2)]
    alpha = channels[3] if len(channels) == 4 else 1.0
    r, g, b = (c * alpha + u * (1 - alpha) for c, u in zip(channels[:3], under, strict=True))
    return r, g, b


def hex_of(colour: RGB) -> str:
    return "#" + "".join(f"{round(min(1.0, max(0.0, c)) * 255):02x}" for c in colour)


def luminance(colour: RGB) -> float:
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = map(linear, colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(one: RGB, other: RGB) -> float:
    """WCAG 2 contrast ratio, 1 to 21."""
    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def mix(one: RGB, other: RGB, share: float) -> RGB:
    """`one` with `share` of `other`."""
    r, g, b = (a * (1 - share) + b * share for a, b in zip(one, other, strict=True))
    return r, g, b


def readable(colour: RGB, on: RGB, toward: RGB, least: float = MIN_CONTRAST) -> RGB:
    """`colour`, moved toward `toward` in small steps until it reaches `least` on `on`."""
    for step in range(21):
        candidate = mix(colour, toward, step / 20)
        if contrast(candidate, on) >= least:
            return candidate
    return toward


WHITE, BLACK = (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Palette:
    """Every colour the shipped templates use, as `#rrggbb`."""

    accent: str
    background: str  # the content's
    page: str  # around the content
    text: str
    muted: str
    dark_accent: str
    dark_background: str
    dark_page: str
    dark_text: str
    dark_muted: str


@dataclass(frozen=True)
class Theme:
    """What `[theme]` set; `palette` derives the rest."""

    logo: str = DEFAULTS["theme.logo"]
    logo_width: int = DEFAULTS["theme.logo_width"]
    accent: str = DEFAULTS["theme.accent"]
    background: str = DEFAULTS["theme.background"]
    text: str = DEFAULTS["theme.text"]
    font_stack: str = DEFAULTS["theme.font_stack"]
    header_image: str = DEFAULTS["theme.header_image"]
    footer_html: str = DEFAULTS["theme.footer_html"]

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> Theme:
        return cls(**{key.removeprefix("theme."): values.get(key, default)
                      for key, default in DEFAULTS.items()})

    @property
    def palette(self) -> Palette:
        return palette_of(self.accent, self.background, self.text)

    @property
    def footer(self) -> Markup:
        """`footer_html` with only a few tags kept (links http(s) or mailto only)."""
        return Markup(sanitise(self.footer_html))


def palette_of(accent_hex: str, background_hex: str, text_hex: str) -> Palette:
    """The light colours as set (muted text derived), and a dark mode derived from the
    accent's hue: a near-black background, light text, and the accent lightened until
    it reads on it."""
    background = rgb(background_hex)
    accent, text = rgb(accent_hex, background), rgb(text_hex, background)
    page = mix(background, text, 0.05)
    muted = readable(mix(text, background, 0.35), worst(text, background, page), text)
    hue, _, saturation = colorsys.rgb_to_hls(*accent)
    dark_background = colorsys.hls_to_rgb(hue, 0.13, min(saturation, 0.18))
    dark_page = colorsys.hls_to_rgb(hue, 0.08, min(saturation, 0.18))
    dark_text = mix(WHITE, accent, 0.06)
    dark_muted = readable(mix(dark_text, dark_background, 0.3),
                          worst(dark_text, dark_background, dark_page), dark_text)
    dark_accent = readable(accent, dark_background, WHITE)
    return Palette(hex_of(accent), hex_of(background), hex_of(page),
                   hex_of(text), hex_of(muted), hex_of(dark_accent), hex_of(dark_background),
                   hex_of(dark_page), hex_of(dark_text), hex_of(dark_muted))


def worst(text: RGB, *backgrounds: RGB) -> RGB:
    """The background on which `text` has the least contrast."""
    return min(backgrounds, key=lambda background: contrast(text, background))


def contrast_pairs(palette: Palette) -> list[tuple[str, str, str]]:
    """(what, foreground, background) for each pair of colours text is written in."""
    return [("theme.accent", palette.accent, palette.background),
            ("theme.text", palette.text, palette.background),
            ("the dark-mode accent", palette.dark_accent, palette.dark_background),
            ("the dark-mode text", palette.dark_text, palette.dark_background),
            ("the secondary text", palette.muted, palette.page),
            ("the dark-mode secondary text", palette.dark_muted, palette.dark_page)]


def contrast_problems(pairs: list[tuple[str, str, str]]) -> list[str]:
    """A message for each pair under 4.5:1."""
    problems = []
    for name, foreground, background in pairs:
        ratio = contrast(rgb(foreground), rgb(background))
        if ratio < MIN_CONTRAST:
            problems.append(f"{name} {foreground} on the background {background} has a contrast "
                            f"of {ratio:.2f}:1, under the {MIN_CONTRAST}:1 text needs to be "
                            "readable (WCAG AA): choose a darker or lighter colour")
    return problems


class FooterCleaner(HTMLParser):
    """Keeps FOOTER_TAGS (without attributes, but a link's href) and the text; escapes the
    rest."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.open: list[str] = []
        self.dropping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.dropping += tag in FOOTER_DROPPED
        if tag not in FOOTER_TAGS:
            return
        if tag == "br":
            self.parts.append("<br>")
            return
        href = dict(attrs).get("href") or ""
        keep = tag != "a" or urlsplit(href).scheme in FOOTER_SCHEMES
        self.parts.append(f'<a href="{escape(href)}">' if tag == "a" and keep else
                          f"<{tag}>" if keep else "")
        self.open.append(tag if keep else "")

    def handle_endtag(self, tag: str) -> None:
        self.dropping -= tag in FOOTER_DROPPED and self.dropping > 0
        if tag in FOOTER_TAGS and tag != "br" and tag in self.open:
            while self.open:
                closed = self.open.pop()
                if closed:
                    self.parts.append(f"</{closed}>")
                if closed == tag:
                    break

    def handle_data(self, data: str) -> None:
        if not self.dropping:
            self.parts.append(escape(data, quote=False))


def sanitise(html: str) -> str:
    cleaner = FooterCleaner()
    try:
        cleaner.feed(html)
        cleaner.close()
    except ValueError:  # a link with an address urlsplit cannot read
        return escape(html)
    return "".join(cleaner.parts) + "".join(f"</{tag}>" for tag in reversed(cleaner.open) if tag)
