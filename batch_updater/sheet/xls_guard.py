"""The structure of an OLE2 (.xls) file, checked before calamine reads it.

calamine trusts the sizes written in the file and can abort the process on damaged ones.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

# --- the structure of an OLE2 (.xls) file -------------------------------------------------

_OLE_LAST_SECTOR = 0xFFFFFFFA  # ids from here up mark the end of a chain or a free sector
_OLE_END_OF_CHAIN = 0xFFFFFFFE
_OLE_DIRECTORY_ENTRY = 128
_OLE_MINI_SECTOR = 64
_OLE_MINI_CUTOFF = 4096
_BIFF_SST = 0x00FC
_BIFF_DIMENSIONS = 0x0200
# The largest sheet an .xls can hold (Excel 97-2003): 65,536 rows by 256 columns.
_BIFF_MAX_ROWS = 65_536
_BIFF_MAX_COLUMNS = 256


class _OleDamage(Exception):
    """What is wrong with an OLE2 file, in words for the user's message."""


class _OleFile:
    """Just enough of an OLE2 (compound file) reader to check what calamine would trust blindly.

    calamine follows the container's sector chains and allocates the sizes and counts it finds
    without checking them against the file; a damaged count then ends the process. This reads
    the same structures and raises _OleDamage for any claim the file cannot back.
    """

    def __init__(self, stream: io.BufferedIOBase, size: int) -> None:
        self.stream = stream
        self.size = size
        header = stream.read(512)
        if len(header) < 512:
            raise _OleDamage("it ends inside its header")
        shift, mini_shift = struct.unpack_from("<HH", header, 0x1E)
        if shift not in (9, 12) or mini_shift != 6:
            raise _OleDamage("its header is not valid")
        self.sector_size = 1 << shift
        self.sectors = max(0, -(-(size - self.sector_size) // self.sector_size))
        (
            directory_sectors,
            fat_sectors,
            directory_start,
            _,
            _,
            minifat_start,
            minifat_sectors,
            difat_start,
            difat_sectors,
        ) = struct.unpack_from("<9I", header, 0x28)
        if max(directory_sectors, fat_sectors, minifat_sectors, difat_sectors) > self.sectors:
            raise _OleDamage("its header claims more sectors than the file holds")
        per_sector = self.sector_size // 4
        difat = list(struct.unpack_from("<109I", header, 0x4C))
        following = difat_start
        for _ in range(difat_sectors):
            if following >= _OLE_LAST_SECTOR:
                break
            if following >= self.sectors:
                raise _OleDamage("its sector table points past the end of the file")
            entries = struct.unpack(f"<{per_sector}I", self._sector(following))
            difat.extend(entries[:-1])
            following = entries[-1]
        self.fat: list[int] = []
        for number in difat:
            if number >= _OLE_LAST_SECTOR:
                continue
            if number >= self.sectors:
                raise _OleDamage("its sector table points past the end of the file")
            self.fat.extend(struct.unpack(f"<{per_sector}I", self._sector(number)))
        # Every link of every chain must name a sector that exists: the reader follows them
        # without looking.
        self.usable = min(self.sectors, len(self.fat))
        if any(self.usable <= link < _OLE_LAST_SECTOR for link in self.fat):
            raise _OleDamage("its sector table points past the end of the file")
        for start in (directory_start, minifat_start):
            if self.usable <= start < _OLE_LAST_SECTOR:
                raise _OleDamage("its header points past the end of the file")
        self.minifat_start = minifat_start
        self.entries: list[tuple[str, int, int, int]] = []  # (name, kind, start, length)
        for number in self._chain(directory_start, whole=True):
            data = self._sector(number)
            for offset in range(0, self.sector_size, _OLE_DIRECTORY_ENTRY):
                self._entry(data[offset : offset + _OLE_DIRECTORY_ENTRY])

    def _entry(self, entry: bytes) -> None:
        kind = entry[66]
        if kind not in (1, 2, 5):  # storage, stream, root
            return
        (name_size,) = struct.unpack_from("<H", entry, 64)
        name = entry[: min(name_size, 64)].decode("utf-16-le", "replace").rstrip("\0")
        (start,) = struct.unpack_from("<I", entry, 116)
        if self.sector_size == 512:
            (length,) = struct.unpack_from("<I", entry, 120)
        else:
            (length,) = struct.unpack_from("<Q", entry, 120)
        if length > self.size:
            raise _OleDamage("its directory names a stream larger than the file")
        if self.usable <= start < _OLE_LAST_SECTOR and (kind == 5 or length >= _OLE_MINI_CUTOFF):
            raise _OleDamage("its directory points past the end of the file")
        self.entries.append((name, kind, start, length))

    def _sector(self, number: int) -> bytes:
        self.stream.seek((number + 1) * self.sector_size)
        return self.stream.read(self.sector_size).ljust(self.sector_size, b"\0")

    def _chain(self, start: int, *, whole: bool = False) -> list[int]:
        """The sectors of a chain; whole: each must lie entirely inside the file."""
        chain: list[int] = []
        current = start
        while current < _OLE_LAST_SECTOR:
            if len(chain) >= self.usable or current >= self.usable:
                raise _OleDamage("a chain of its sectors loops or runs past the end of the file")
            if whole and (current + 2) * self.sector_size > self.size:
                raise _OleDamage("its directory is cut short")
            chain.append(current)
            current = self.fat[current]
        return chain

    def stream_bytes(self, name: str) -> bytes | None:
        """The content of a stream of the root storage, by name (case-insensitive)."""
        wanted = name.casefold()
        found = next((e for e in self.entries if e[1] == 2 and e[0].casefold() == wanted), None)
        if found is None:
            return None
        _, _, start, length = found
        if length >= _OLE_MINI_CUTOFF:
            data = b"".join(self._sector(n) for n in self._chain(start))
            return data[:length]
        root = next((e for e in self.entries if e[1] == 5), None)
        if root is None:
            return None
        mini_stream = b"".join(self._sector(n) for n in self._chain(root[2]))[: root[3]]
        minifat_data = b"".join(self._sector(n) for n in self._chain(self.minifat_start))
        minifat = struct.unpack(f"<{len(minifat_data) // 4}I", minifat_data)
        pieces: list[bytes] = []
        current, steps = start, 0
        while current < _OLE_LAST_SECTOR:
            steps += 1
            if current >= len(minifat) or steps > len(minifat):
                raise _OleDamage("a chain of its sectors loops or runs past the end of the file")
            pieces.append(
                mini_stream[current * _OLE_MINI_SECTOR : (current + 1) * _OLE_MINI_SECTOR]
            )
            current = minifat[current]
        return b"".join(pieces)[:length]


def _biff_damage(workbook: bytes) -> str | None:
    """What in an .xls Workbook stream claims more than it holds (calamine allocates it)."""
    position, end = 0, len(workbook)
    while position + 4 <= end:
        kind, length = struct.unpack_from("<HH", workbook, position)
        data = workbook[position + 4 : position + 4 + length]
        position += 4 + length
        if kind == _BIFF_SST and len(data) >= 8:
            (unique,) = struct.unpack_from("<i", data, 4)
            # Each text takes at least 3 bytes.
            if unique < 0 or unique > end // 3:
                return f"its list of texts claims {unique:,} entries in {end:,} bytes"
        elif kind == _BIFF_DIMENSIONS and len(data) in (10, 14):
            if len(data) == 14:
                first_row, last_row, first_column, last_column = struct.unpack_from("<IIHH", data)
            else:
                first_row, last_row, first_column, last_column = struct.unpack_from("<HHHH", data)
            if (
                last_row > _BIFF_MAX_ROWS
                or last_column > _BIFF_MAX_COLUMNS
                or first_row > last_row
                or first_column > last_column
            ):
                return "a sheet claims more rows or columns than an .xls can hold"
    return None


def _ole_damage(path: Path) -> str | None:
    """What is wrong with an OLE2 (.xls) file that the workbook reader would not survive."""
    with path.open("rb") as stream:
        try:
            ole = _OleFile(stream, path.stat().st_size)
            workbook = ole.stream_bytes("Workbook") or ole.stream_bytes("Book")
        except _OleDamage as damage:
            return str(damage)
    return _biff_damage(workbook) if workbook else None
