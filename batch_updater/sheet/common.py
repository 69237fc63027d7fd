"""What every part of the reader shares: limits, names, file kinds, messages' places."""

from __future__ import annotations

import codecs
import gc
import hashlib
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from ..errors import InputError

DEFAULT_MAX_ROWS = 1_000_000
DEFAULT_HEADER_SEARCH_ROWS = 20
# The most cells (rows x columns, counted from A1) a sheet may span. The workbook reader builds
# the whole rectangle in memory (32 bytes a cell) before a single row can be looked at, and a
# failed allocation ends the process outright, so a stray value in cell XFD1048576 is refused
# here instead: 1,000,000 rows of 50 columns still fit.
MAX_SHEET_CELLS = 50_000_000

_T = TypeVar("_T")

WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")
TEXT_SUFFIXES = (".csv", ".txt", ".tsv")
SUPPORTED_SUFFIXES = WORKBOOK_SUFFIXES + TEXT_SUFFIXES

# How many header texts an error message lists before it says "and N more".
_MAX_LISTED_HEADERS = 15
_MAX_LISTED_MERGES = 8

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# The stream that holds an encrypted (password-protected) .xlsx inside its OLE2 wrapper.
_ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")

_DELIMITERS = (",", ";", "\t")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
# Enough text to judge the delimiter by, without sniffing a 100 MB file.
_SNIFF_CHARS = 64 * 1024
_HASH_CHUNK = 1024 * 1024

_FIX_PASSWORD = (
    "is password-protected; open it in Excel, remove the password "
    "(File > Info > Protect Workbook) and save a copy"
)
_SAVE_AS_XLSX = 'open it in Excel and save it as an "Excel Workbook (.xlsx)"'
_SAVE_AS_CSV_UTF8 = 'save it from Excel as "CSV UTF-8 (Comma delimited)"'

# Everything reading a damaged zip member can raise, from the zip layer to the inflater.
_ZIP_READ_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    KeyError,
)


def column_letter(index: int) -> str:
    """The spreadsheet letter of the 0-based column index: 0 -> A, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file's bytes as hex, read in chunks so memory stays flat."""
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
                digest.update(chunk)
    except OSError as exc:
        raise _os_error(path, exc) from exc
    return digest.hexdigest()


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a sheet's worth of rows is built.

    A 100,000-row sheet means about a million new tuples and lists and no reference cycles;
    the collector would rescan the growing heap over and over (measured here: it doubled the
    time). Reference counting still frees everything as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --- where things are, for messages -------------------------------------------------------


def _where(file_name: str, sheet_name: str) -> str:
    return f'{file_name}, sheet "{sheet_name}"' if sheet_name else file_name


def _os_error(path: Path, exc: OSError) -> InputError:
    name = path.name
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{name}: file not found ({path.absolute()}).")
    if isinstance(exc, IsADirectoryError):
        return InputError(f"{name} is a folder, not a file ({path.absolute()}).")
    if isinstance(exc, PermissionError):
        # Excel holds a lock on an open workbook on Windows; that is by far the common cause.
        return InputError(
            f"{name} is open in another program or not readable; close it in Excel and try again."
        )
    return InputError(f"{name} could not be read: {exc.strerror or exc}.")


def _read_head(path: Path) -> bytes:
    try:
        with path.open("rb") as stream:
            return stream.read(8192)
    except OSError as exc:
        raise _os_error(path, exc) from exc


# --- what kind of file it is --------------------------------------------------------------


def _zip_kind(path: Path) -> str:
    """The workbook suffix the zip's content says it is (.xlsx, .xlsb or .ods)."""
    name = path.name
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            mimetype = archive.read("mimetype")[:100] if "mimetype" in names else b""
    except OSError as exc:
        raise _os_error(path, exc) from exc
    except _ZIP_READ_ERRORS as exc:
        raise InputError(
            f"{name} is damaged: it starts like an Excel workbook but is not a complete one "
            f"({exc}); open it in Excel and save it again, or export it again.",
        ) from exc
    if "xl/workbook.xml" in names:
        return ".xlsx"
    if "xl/workbook.bin" in names:
        return ".xlsb"
    if b"opendocument.spreadsheet" in mimetype or ("content.xml" in names and not mimetype):
        return ".ods"
    if "word/document.xml" in names:
        what = "a Word document"
    elif "ppt/presentation.xml" in names:
        what = "a PowerPoint presentation"
    else:
        what = "a zip archive"
    raise InputError(f"{name} is {what}, not a workbook; {_SAVE_AS_XLSX}.")


def _is_encrypted_ole(path: Path) -> bool:
    # An encrypted .xlsx is an OLE2 file with an EncryptedPackage stream; calamine reports it
    # only when the name ends in .xlsx, so look for the stream's directory entry ourselves.
    tail = b""
    try:
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
                if _ENCRYPTED_STREAM in tail + chunk:
                    return True
                tail = chunk[-len(_ENCRYPTED_STREAM) :]
    except OSError as exc:
        raise _os_error(path, exc) from exc
    return False


def _looks_like_html(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:512].lower()
    return start.startswith((b"<!doctype html", b"<html", b"<table")) or b"<html" in start


def _looks_like_text(head: bytes) -> bool:
    if head.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    if b"\x00" in head:
        return False
    controls = sum(1 for byte in head if byte < 32 and byte not in (9, 10, 13))
    return controls <= len(head) // 100
