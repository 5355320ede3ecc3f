"""Judge0's ``additional_files``: a zip archive, read in memory on the host into plain
``{relative path: bytes}``, which the worker then writes into the box through cellbox's
link-refusing file writes. Nothing is unpacked onto a disk by a zip tool, and an archive
inside the archive is a file like any other: never opened here.

Only the central directory is trusted to say where entries are; what they unpack to is
counted as it comes out. Each entry is decompressed by this module with a hard cap on the
bytes produced (the cap left over from the entries before it), so an entry that lies about
its size costs at most the cap, whatever its method (stored, deflate, bzip2, lzma); then its
size and CRC must be the declared ones.

Refused (422): entries that are links, devices or other non-regular files, absolute paths,
``..``, empty or odd path parts, duplicate names, encrypted entries, other compression
methods, damaged entries. Refused (413): more than ``max_entries`` files, or more than
``max_bytes`` in all. Errors are Judge0's field errors: ``{"additional_files": [...]}``.
"""

from __future__ import annotations

import bz2
import io
import lzma
import stat
import struct
import zipfile
import zlib
from typing import Protocol

from cellbox.server.errors import ApiError

MAX_PATH = 255  # characters of a path in the archive
MAX_DEPTH = 8  # directories deep
FIELD = "additional_files"
LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # signature ... name length, extra length
LOCAL_MAGIC = b"PK\x03\x04"
METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate",
           zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}


class Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


def extract(data: bytes, max_entries: int, max_bytes: int) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError,
            ValueError) as e:
        raise refused(422, f"is not a valid zip archive: {e}") from None
    _check(infos, max_entries, max_bytes)
    files: dict[str, bytes] = {}
    left = max_bytes
    for info in infos:
        files[info.filename] = _unpack(data, info, left, max_bytes)
        left -= len(files[info.filename])
    return files


def refused(status: int, message: str) -> ApiError:
    return ApiError(status, f"{FIELD} {message}", body={FIELD: [message]})


def _check(infos: list[zipfile.ZipInfo], max_entries: int, max_bytes: int) -> None:
    if len(infos) > max_entries:
        raise refused(413, f"holds {len(infos)} files; the most is {max_entries}")
    if sum(i.file_size for i in infos) > max_bytes:  # early: honest headers of a big archive
        raise refused(413, f"unpacks to more than {max_bytes} bytes, the most")
    seen: set[str] = set()
    for i in infos:
        what = f"entry {i.filename!r}"
        kind = stat.S_IFMT(i.external_attr >> 16)  # 0: not said (many tools)
        if i.create_system == 3 and kind and kind != stat.S_IFREG:  # 3: made on Unix
            raise refused(422, f"{what} is not a regular file (a link or a special file); "
                          "only regular files and directories are accepted")
        if i.flag_bits & 0x1:
            raise refused(422, f"{what} is encrypted")
        if i.compress_type not in METHODS:
            raise refused(422, f"{what} uses compression method {i.compress_type}; accepted: "
                          f"{', '.join(METHODS.values())}")
        _check_path(i.filename, what)
        if i.filename in seen:
            raise refused(422, f"{what} appears twice")
        seen.add(i.filename)


def _check_path(name: str, what: str) -> None:
    parts = name.split("/")
    bad = (name.startswith("/") or "\\" in name or "\0" in name or len(name) > MAX_PATH
           or len(parts) > MAX_DEPTH + 1 or any(p in ("", ".", "..") for p in parts))
    if bad:
        raise refused(422, f"{what}: paths must be relative, without '..', '.', empty "
                      f"parts or backslashes, at most {MAX_PATH} characters and "
                      f"{MAX_DEPTH} directories deep")


def _unpack(data: bytes, info: zipfile.ZipInfo, left: int, max_bytes: int) -> bytes:
    """The entry's bytes, at most ``left`` of them (else 413), checked against its declared
    size and CRC (else 422)."""
    damaged = refused(422, f"entry {info.filename!r} is damaged: its data, size or checksum "
                      "does not match its headers")
    raw = _stored_bytes(data, info, damaged)
    if info.compress_type == zipfile.ZIP_STORED:
        out = raw[:left + 1]
    else:
        try:
            d = _decompressor(info.compress_type, raw, max_bytes)
            # One call: the input is all here, and max_length bounds what comes out.
            out = d.decompress(raw[_lzma_header(raw) if info.compress_type == zipfile.ZIP_LZMA
                                   else 0:], left + 1)
        except (OSError, lzma.LZMAError, zlib.error, ValueError, EOFError):
            raise damaged from None
        if len(out) <= left and not d.eof:  # the stream stopped before its end
            raise damaged
    if len(out) > left:
        raise refused(413, f"unpacks to more than {max_bytes} bytes, the most")
    if len(out) != info.file_size or zlib.crc32(out) != info.CRC:
        raise damaged
    return out


def _stored_bytes(data: bytes, info: zipfile.ZipInfo, damaged: ApiError) -> bytes:
    """The entry's bytes as stored: after its local header, which must name it too."""
    start = info.header_offset
    header = data[start:start + LOCAL_HEADER.size]
    if len(header) < LOCAL_HEADER.size:
        raise damaged
    magic, *_, name_len, extra_len = LOCAL_HEADER.unpack(header)
    name_at = start + LOCAL_HEADER.size
    if magic != LOCAL_MAGIC or data[name_at:name_at + name_len] != info.orig_filename.encode(
            "utf-8" if info.flag_bits & 0x800 else "cp437"):
        raise damaged
    begin = name_at + name_len + extra_len
    if begin + info.compress_size > len(data):
        raise damaged
    return data[begin:begin + info.compress_size]


def _decompressor(method: int, raw: bytes, max_bytes: int) -> Decompressor:
    if method == zipfile.ZIP_DEFLATED:
        return zlib.decompressobj(-15)
    if method == zipfile.ZIP_BZIP2:
        return bz2.BZ2Decompressor()
    # zip's LZMA: 2 bytes of version, 2 of properties' size, the LZMA1 properties (a byte
    # for lc, lp and pb, 4 for the dictionary's size), the stream
    props = raw[4:_lzma_header(raw)]
    if len(props) != 5 or props[0] >= 9 * 5 * 5:
        raise ValueError("bad LZMA properties")
    pb, rest = divmod(props[0], 45)
    lp, lc = divmod(rest, 9)
    # The whole output is at most max_bytes, so no match reaches further back: a larger
    # dictionary the header asks for would only cost memory.
    dict_size = max(4096, min(struct.unpack("<L", props[1:])[0], max_bytes))
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[
        {"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc, "lp": lp, "pb": pb}])


def _lzma_header(raw: bytes) -> int:
    """Where the LZMA stream starts after zip's LZMA header."""
    if len(raw) < 4:
        raise ValueError("no LZMA header")
    return 4 + struct.unpack("<H", raw[2:4])[0]
