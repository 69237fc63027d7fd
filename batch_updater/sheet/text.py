"""Delimited text files: the encoding and the delimiter, detected."""

from __future__ import annotations

import codecs
import csv
import re

from ..errors import InputError
from .common import _DELIMITERS, _SAVE_AS_CSV_UTF8

# --- text files ---------------------------------------------------------------------------


def _decode(raw: bytes, name: str, notices: list[str]) -> str:
    """The file's text: BOM first (UTF-8, UTF-16), else strict UTF-8, else Windows-1252."""
    for bom, encoding in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if raw.startswith(bom):
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{name} starts like {encoding.upper()} text but is not valid "
                    f"{encoding.upper()} "
                    f"(byte {exc.start:,}); {_SAVE_AS_CSV_UTF8}."
                ) from exc
            break
    else:
        if b"\x00" in raw:
            raise InputError(
                f"{name} does not look like a text file (it contains NUL bytes); if it is "
                f'"Unicode Text" from Excel, {_SAVE_AS_CSV_UTF8}.'
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            if _looks_like_utf8(raw):
                line = raw.count(b"\n", 0, bad.start) + 1
                raise InputError(
                    f"{name} mixes two text encodings: it holds UTF-8 text, but line {line:,} "
                    f"does not (byte 0x{raw[bad.start]:02X} there is not UTF-8), so its accented "
                    "letters would be sent wrong; retype them in an editor that saves UTF-8, or "
                    f"export the whole file again and {_SAVE_AS_CSV_UTF8}."
                ) from bad
            try:
                text = raw.decode("cp1252")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{name} is neither UTF-8 nor Windows-1252 text (byte {exc.start:,}); "
                    f"{_SAVE_AS_CSV_UTF8}."
                ) from exc
            notices.append(
                f"{name} is not UTF-8; read it as Windows-1252 (Western European). If accented "
                f"letters look wrong in the results, {_SAVE_AS_CSV_UTF8}."
            )
    if "\x00" in text:
        raise InputError(f"{name} does not look like a text file (it contains NUL characters).")
    return text


# Well-formed UTF-8 sequences of two, three and four bytes.
_UTF8_SEQUENCE_RE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def _looks_like_utf8(raw: bytes) -> bool:
    """Whether text that is not valid UTF-8 still holds UTF-8 letters (a mix of two encodings).

    Windows-1252 text can hold such a pair by chance ("É" followed by a curly quote), so one
    two-byte pair alone is not taken as proof; a longer sequence, or a second pair, is.
    """
    for found, match in enumerate(_UTF8_SEQUENCE_RE.finditer(raw), start=1):
        if found >= 2 or len(match.group()) > 2:
            return True
    return False


def _sniff_delimiter(sample: str, suffix: str) -> str:
    """The likeliest of comma, semicolon and tab for this text."""
    # Cut at a line end so the sniffer never sees half a row.
    cut = max(sample.rfind("\n"), sample.rfind("\r"))
    if 0 < cut < len(sample) - 1:
        sample = sample[: cut + 1]
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters="".join(_DELIMITERS)).delimiter
    except csv.Error:
        delimiter = ""
    if delimiter in _DELIMITERS and delimiter in sample:
        return delimiter
    # Fallback: the candidate seen most often in the first non-empty line; ties go to the
    # one the file name suggests (Excel's "Text (Tab delimited)" saves .txt).
    preferred = ("\t", ",", ";") if suffix in (".tsv", ".txt") else _DELIMITERS
    line = next((ln for ln in sample.splitlines() if ln.strip()), "")
    return max(preferred, key=lambda d: (line.count(d), -preferred.index(d)))
