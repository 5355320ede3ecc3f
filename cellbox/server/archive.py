"""Judge0's ``additional_files``: a zip archive, read in memory on the host into plain
``{relative path: bytes}``, which the worker then writes into the box through cellbox's
link-refusing file writes. Nothing is unpacked onto a disk by a zip tool.

Refused (422), before anything is decompressed: entries that are links, devices or other
non-regular files, absolute paths, ``..``, empty or odd path parts, duplicate names,
encrypted entries; more than ``max_entries`` files or more than ``max_bytes`` in all (413).
"""

from __future__ import annotations

import io
import stat
import zipfile

from cellbox.server.errors import ApiError

MAX_PATH = 255  # characters of a path in the archive
MAX_DEPTH = 8  # directories deep


def extract(data: bytes, max_entries: int, max_bytes: int) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            _check(infos, max_entries, max_bytes)
            # read() stops at the size the entry declares (checked above) and checks the CRC
            return {i.filename: zf.read(i) for i in infos}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as e:
        raise ApiError(422, f"additional_files is not a valid zip archive: {e}") from None


def _check(infos: list[zipfile.ZipInfo], max_entries: int, max_bytes: int) -> None:
    if len(infos) > max_entries:
        raise ApiError(413, f"additional_files holds {len(infos)} files; the most is "
                       f"{max_entries}")
    total = sum(i.file_size for i in infos)
    if total > max_bytes:
        raise ApiError(413, f"additional_files unpacks to {total} bytes; the most is "
                       f"{max_bytes}")
    seen: set[str] = set()
    for i in infos:
        what = f"additional_files entry {i.filename!r}"
        kind = stat.S_IFMT(i.external_attr >> 16)  # 0: not said (many tools)
        if i.create_system == 3 and kind and kind != stat.S_IFREG:  # 3: made on Unix
            raise ApiError(422, f"{what} is not a regular file (a link or a special file); "
                           "only regular files and directories are accepted")
        if i.flag_bits & 0x1:
            raise ApiError(422, f"{what} is encrypted")
        _check_path(i.filename, what)
        if i.filename in seen:
            raise ApiError(422, f"{what} appears twice")
        seen.add(i.filename)


def _check_path(name: str, what: str) -> None:
    parts = name.split("/")
    bad = (name.startswith("/") or "\\" in name or "\0" in name or len(name) > MAX_PATH
           or len(parts) > MAX_DEPTH + 1 or any(p in ("", ".", "..") for p in parts))
    if bad:
        raise ApiError(422, f"{what}: paths must be relative, without '..', '.', empty "
                       f"parts or backslashes, at most {MAX_PATH} characters and "
                       f"{MAX_DEPTH} directories deep")
