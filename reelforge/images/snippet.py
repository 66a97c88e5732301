"""The ``<picture>`` element for one responsive set.

Contract: :func:`picture_html` returns a ready-to-paste ``<picture>``: one ``<source>`` per
modern format (most efficient first) with its ``srcset`` (``URL 640w, ...``) and ``sizes``,
then an ``<img>`` in the fallback format (JPEG, or PNG for pictures with alpha) with
``src``, ``srcset``, ``sizes``, ``width``/``height`` of the largest variant (no layout
shift), an
``alt`` to be filled in, ``decoding="async"``, the dominant colour painted behind it and
the ThumbHash in ``data-thumbhash``; ``loading="lazy"`` unless the picture is above the
fold, where it gets ``fetchpriority="high"`` instead. Animations get a muted, looping
``<video>`` (MP4) with the animated WebP as an ``<img>`` fallback inside it.
"""

from __future__ import annotations

from html import escape


def _srcset(variants: list[dict], base: str) -> str:
    return ", ".join(f"{base}{v['file']} {v['width']}w" for v in variants)


def picture_html(entry: dict, *, base: str = "", sizes: str = "100vw",
                 above_fold: bool = False) -> str:  # fmt: skip
    """See the module docstring. ``entry`` is one image of the manifest."""
    top = max(entry["variants"], key=lambda v: v["width"])  # intrinsic size: the largest
    width, height = top["width"], top["height"]
    alt = escape(entry.get("alt", ""), quote=True)
    style = f"background-color:{entry['placeholder']['colour']}"
    thumb = escape(entry["placeholder"]["thumbhash"], quote=True)
    lazy = ' fetchpriority="high"' if above_fold else ' loading="lazy"'
    if entry.get("animation"):
        anim = entry["animation"]
        poster = f"{base}{entry['fallback']['file']}"
        return (
            f'<video autoplay muted loop playsinline width="{width}" height="{height}" '
            f'poster="{escape(poster, quote=True)}" style="{style}"'
            f"{'' if above_fold else ' preload=' + chr(34) + 'none' + chr(34)}>\n"
            f'  <source src="{escape(base + anim["mp4"], quote=True)}" type="video/mp4">\n'
            f'  <img src="{escape(base + anim["webp"], quote=True)}" width="{width}" '
            f'height="{height}" alt="{alt}" decoding="async"{lazy}>\n'
            "</video>"
        )
    by_format: dict[str, list[dict]] = {}
    for v in entry["variants"]:
        by_format.setdefault(v["format"], []).append(v)
    fallback = entry["fallback"]["format"]
    lines = ["<picture>"]
    for fmt, variants in by_format.items():
        if fmt == fallback:
            continue
        lines.append(f'  <source type="{variants[0]["mime"]}" '
                     f'srcset="{escape(_srcset(variants, base), quote=True)}" '
                     f'sizes="{escape(sizes, quote=True)}">')  # fmt: skip
    fb = by_format[fallback]
    lines.append(
        f'  <img src="{escape(base + entry["fallback"]["file"], quote=True)}" '
        f'srcset="{escape(_srcset(fb, base), quote=True)}" sizes="{escape(sizes, quote=True)}" '
        f'width="{width}" height="{height}" alt="{alt}" decoding="async"{lazy} '
        f'style="{style}" data-thumbhash="{thumb}">'
    )
    lines.append("</picture>")
    return "\n".join(lines)
