"""Normalised Persian text, for finding values by text (never for validation)."""

from __future__ import annotations

from typing import Final

__all__ = ["normalize_text"]

_ARABIC_TO_PERSIAN: Final = {
    "\u064a": "\u06cc",  # ARABIC LETTER YEH -> ARABIC LETTER FARSI YEH
    "\u0649": "\u06cc",  # ARABIC LETTER ALEF MAKSURA -> FARSI YEH
    "\u0643": "\u06a9",  # ARABIC LETTER KAF -> ARABIC LETTER KEHEH (Persian kaf)
}

#: Zero-width and invisible formatting characters: removed.
_INVISIBLE: Final = (
    "\u200b"  # ZERO WIDTH SPACE
    "\u200c"  # ZERO WIDTH NON-JOINER (nim-fasele)
    "\u200d"  # ZERO WIDTH JOINER
    "\u200e\u200f"  # LEFT-TO-RIGHT / RIGHT-TO-LEFT MARK
    "\u202a\u202b\u202c\u202d\u202e"  # bidi embeddings and overrides
    "\u2060"  # WORD JOINER
    "\u2066\u2067\u2068\u2069"  # bidi isolates
    "\ufeff"  # ZERO WIDTH NO-BREAK SPACE (BOM)
    "\u00ad"  # SOFT HYPHEN
    "\u0640"  # ARABIC TATWEEL (kashida)
)

#: Arabic diacritics (harakat, tanwin, shadda, sukun, superscript alef): removed.
_DIACRITICS: Final = "".join(chr(c) for c in range(0x064B, 0x0660)) + "\u0670"

_TABLE: Final[dict[int, str | None]] = {
    **{ord(k): v for k, v in _ARABIC_TO_PERSIAN.items()},
    **{ord(ch): None for ch in _INVISIBLE + _DIACRITICS},
    # Persian (U+06F0..) and Arabic-Indic (U+0660..) digits -> ASCII digits
    **{0x06F0 + d: str(d) for d in range(10)},
    **{0x0660 + d: str(d) for d in range(10)},
}


def normalize_text(text: str) -> str:
    """Text as :meth:`SnapshotStore.search_value` compares it, in this order:

    1. Arabic yeh ``ي`` (U+064A) and alef maksura ``ى`` (U+0649) become Persian yeh ``ی``
       (U+06CC); Arabic kaf ``ك`` (U+0643) becomes Persian kaf ``ک`` (U+06A9).
    2. Persian ``۰-۹`` and Arabic-Indic ``٠-٩`` digits become ASCII ``0-9``.
    3. Zero-width and invisible characters are removed: ZWNJ (U+200C), ZWSP, ZWJ,
       LRM/RLM, bidi embeddings/isolates, word joiner, BOM, soft hyphen; so are tatweel
       (U+0640) and Arabic diacritics (U+064B-U+065F, U+0670).
    4. Runs of white space (any Unicode space, NBSP included) become one space; the ends
       are stripped.
    5. ``str.casefold()`` (Latin ``Acetaminophen`` finds ``ACETAMINOPHEN``).

    So ``"مي\u200cخواهم  كتاب"`` and ``"میخواهم کتاب"`` normalise alike.
    """
    return " ".join(text.translate(_TABLE).split()).casefold()
