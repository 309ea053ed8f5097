"""The registry upload, read as it arrives: its CSRF field first (the session
middleware checks it before anything else is read), then the file, straight into a
temporary file, never whole in memory, refused past ``MAX_FILE_BYTES``.
"""

from __future__ import annotations

import contextlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from aiohttp import BodyPartReader, MultipartReader, web

from qiwi_gw.console import keys

# QIWI's registry of a busy day is a few megabytes; 600,000 lines are 27 MB.
MAX_FILE_BYTES = 32 * 1024 * 1024
# A form field other than the file (the token, the dates).
MAX_FIELD_BYTES = 512
# Parts in one upload: the form has four.
MAX_PARTS = 8
FILE_FIELD = "file"


class TooLargeError(Exception):
    """The upload is larger than ``MAX_FILE_BYTES``."""


async def first_field(request: web.Request, name: str) -> str | None:
    """The first part's text when it is the field ``name``; the reader is kept on the
    request for ``receive``. A browser sends the fields in the form's order, and the
    form puts its token first."""
    reader = await request.multipart()
    request[keys.PARTS] = reader
    part = await reader.next()
    if not isinstance(part, BodyPartReader) or part.name != name:
        return None
    return await _small_text(part)


async def _small_text(part: BodyPartReader) -> str | None:
    data = bytearray()
    while chunk := await part.read_chunk(MAX_FIELD_BYTES):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        return None


@dataclass
class Received:
    """The upload's fields, and its file on disk (deleted by ``discard``)."""

    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    filename: str = ""

    def discard(self) -> None:
        if self.path is not None:
            _remove(self.path)
            self.path = None


async def receive(request: web.Request, names: tuple[str, ...]) -> Received:
    """The rest of the upload after its token: the fields ``names`` (short texts) and
    the file. Raises ``TooLargeError`` past ``MAX_FILE_BYTES`` (nothing left on disk)."""
    reader: MultipartReader = request[keys.PARTS]
    received = Received()
    for _ in range(MAX_PARTS):
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise web.HTTPBadRequest(reason="nested multipart")
        if part.name == FILE_FIELD and part.filename and received.path is None:
            received.filename = PurePath(part.filename.replace("\\", "/")).name[:200]
            received.path = await _to_disk(part)
        elif part.name in names:
            text = await _small_text(part)
            received.fields[part.name] = (text or "").strip()
        else:
            await _skip(part)
    return received


async def _to_disk(part: BodyPartReader) -> Path:
    file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, deleted by discard
        prefix="qiwi-gw-registry-", suffix=".upload", delete=False
    )
    path = Path(file.name)
    try:
        with file:
            size = 0
            while chunk := await part.read_chunk(64 * 1024):
                size += len(chunk)
                if size > MAX_FILE_BYTES:
                    raise TooLargeError
                # A write to the page cache: microseconds, not worth a thread.
                file.write(chunk)
    except BaseException:
        _remove(path)
        raise
    return path


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def _skip(part: BodyPartReader) -> None:
    size = 0
    while chunk := await part.read_chunk(64 * 1024):
        size += len(chunk)
        if size > MAX_FILE_BYTES:
            raise TooLargeError
