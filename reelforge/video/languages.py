"""Language tags for subtitle and audio tracks (BCP 47, as HLS and DASH want them).

Contract: :func:`canonical` accepts a BCP 47-style tag (a 2-3 letter language, an optional
4-letter script, an optional 2-letter or 3-digit region: ``en``, ``fr``, ``pt-BR``,
``zh-Hant``, ``es-419``), returns it in its canonical case (``pt-BR``) and raises
``ValueError`` for anything else; ISO 639-2 codes that have a 2-letter form (``eng``,
``fra``, ``ger``) become that form. :func:`display_name` gives the name players show
(``Portuguese (Brazil)``), falling back to the tag itself.
"""

from __future__ import annotations

import re

TAG = re.compile(r"^([A-Za-z]{2,3})(?:-([A-Za-z]{4}))?(?:-([A-Za-z]{2}|\d{3}))?$")

LANGUAGES = {
    "ar": "Arabic", "bg": "Bulgarian", "bn": "Bengali", "ca": "Catalan", "cs": "Czech",
    "cy": "Welsh", "da": "Danish", "de": "German", "el": "Greek", "en": "English",
    "eo": "Esperanto", "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian",
    "fi": "Finnish", "fil": "Filipino", "fr": "French", "ga": "Irish", "gl": "Galician",
    "gu": "Gujarati", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian",
    "hy": "Armenian", "id": "Indonesian", "is": "Icelandic", "it": "Italian",
    "ja": "Japanese", "ka": "Georgian", "kk": "Kazakh", "km": "Khmer", "kn": "Kannada",
    "ko": "Korean", "lt": "Lithuanian", "lv": "Latvian", "mk": "Macedonian",
    "ml": "Malayalam", "mn": "Mongolian", "mr": "Marathi", "ms": "Malay", "mt": "Maltese",
    "my": "Burmese", "nb": "Norwegian Bokmål", "ne": "Nepali", "nl": "Dutch",
    "nn": "Norwegian Nynorsk", "no": "Norwegian", "pa": "Punjabi", "pl": "Polish",
    "pt": "Portuguese", "ro": "Romanian", "ru": "Russian", "si": "Sinhala", "sk": "Slovak",
    "sl": "Slovenian", "sq": "Albanian", "sr": "Serbian", "sv": "Swedish", "sw": "Swahili",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish",
    "uk": "Ukrainian", "ur": "Urdu", "uz": "Uzbek", "vi": "Vietnamese", "yue": "Cantonese",
    "zh": "Chinese", "zu": "Zulu",
}  # fmt: skip
SCRIPTS = {"Hans": "Simplified", "Hant": "Traditional", "Latn": "Latin", "Cyrl": "Cyrillic"}
REGIONS = {
    "AR": "Argentina", "AT": "Austria", "AU": "Australia", "BE": "Belgium", "BR": "Brazil",
    "CA": "Canada", "CH": "Switzerland", "CN": "China", "DE": "Germany", "ES": "Spain",
    "FR": "France", "GB": "United Kingdom", "HK": "Hong Kong", "IE": "Ireland",
    "IN": "India", "IT": "Italy", "JP": "Japan", "KR": "Korea", "MX": "Mexico",
    "NL": "Netherlands", "NZ": "New Zealand", "PT": "Portugal", "TW": "Taiwan",
    "US": "United States", "ZA": "South Africa", "419": "Latin America",
}  # fmt: skip
ISO639_2 = {
    "ara": "ar", "bul": "bg", "cat": "ca", "ces": "cs", "cze": "cs", "chi": "zh", "zho": "zh",
    "dan": "da", "deu": "de", "ger": "de", "ell": "el", "gre": "el", "eng": "en",
    "spa": "es", "est": "et", "fas": "fa", "per": "fa", "fin": "fi", "fra": "fr",
    "fre": "fr", "heb": "he", "hin": "hi", "hrv": "hr", "hun": "hu", "ind": "id",
    "isl": "is", "ice": "is", "ita": "it", "jpn": "ja", "kor": "ko", "lit": "lt",
    "lav": "lv", "msa": "ms", "may": "ms", "nld": "nl", "dut": "nl", "nor": "no",
    "nob": "nb", "nno": "nn", "pol": "pl", "por": "pt", "ron": "ro", "rum": "ro",
    "rus": "ru", "slk": "sk", "slo": "sk", "slv": "sl", "srp": "sr", "swe": "sv",
    "tha": "th", "tur": "tr", "ukr": "uk", "urd": "ur", "vie": "vi",
}  # fmt: skip


def canonical(tag: str) -> str:
    """``tag`` in canonical case (``pt-br`` -> ``pt-BR``); ``ValueError`` if it is not a
    language tag of the form language[-Script][-REGION]."""
    m = TAG.match(tag.strip())
    if not m or m.group(1).lower() in ("und", "zxx", "mul", "mis"):
        raise ValueError(f"{tag!r} is not a language tag like en, fr or pt-BR")
    language = m.group(1).lower()
    language = ISO639_2.get(language, language)
    parts = [language]
    if m.group(2):
        parts.append(m.group(2).title())
    if m.group(3):
        parts.append(m.group(3).upper())
    return "-".join(parts)


def from_stream(tag: str | None) -> str | None:
    """A media stream's language tag (often ISO 639-2, ``eng``) as BCP 47, or None when it
    says nothing (``und``) or is not a language."""
    if not tag:
        return None
    try:
        return canonical(tag)
    except ValueError:
        return None


def display_name(tag: str | None) -> str:
    """``Portuguese (Brazil)`` for ``pt-BR``; the tag itself for a language not listed."""
    if not tag:
        return "Main"
    m = TAG.match(tag)
    if not m or m.group(1).lower() not in LANGUAGES:
        return tag
    name = LANGUAGES[m.group(1).lower()]
    script, region = m.group(2), m.group(3)
    extra = [SCRIPTS.get(script.title(), script) if script else None,
             REGIONS.get(region.upper(), region.upper()) if region else None]  # fmt: skip
    extra = [e for e in extra if e]
    return f"{name} ({', '.join(extra)})" if extra else name
