"""Durable JSONL and atomic files: the storage primitives every log in the workbench uses.

- ``append_jsonl`` writes whole lines, then flush + fsync, under an exclusive lock of the file: a
  crash loses at most the line in flight, and a torn line a dead writer left is moved aside first
  (``repair_torn_tail``), so a new line is never glued onto it and lost.
- ``read_jsonl`` yields ``(line_number, object)``; a bad line is a ``FormatError`` naming file,
  line and field, raised (``strict=True``) or collected in ``errors`` (``strict=False``).
- A *torn* last line (no trailing newline, not valid JSON: a writer died mid-append) is reported
  separately and never raises, because everything before it is intact.
- ``atomic_write_bytes`` writes to a temporary file in the same folder and renames it over the target.
- ``checksum`` / ``file_checksum``: a fast content checksum (xxh3-128) that cache files beside a log
  record, so a damaged or replaced file is noticed when it is read back.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import xxhash
from pydantic import BaseModel, ValidationError


class FormatError(ValueError):
    """Bad input: says which file, which line and which field."""

    def __init__(self, path: str | Path, line: int | None, message: str, field: str | None = None):
        self.path, self.line, self.field, self.message = str(path), line, field, message
        where = f"{path}:{line}" if line is not None else str(path)
        what = f" field '{field}':" if field else ""
        super().__init__(f"{where}:{what} {message}")


M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)


def validate_record(model: type[M], obj: Any, path: str | Path, line: int | None, *, what: str = "") -> M:
    """``model.model_validate(obj)``; a failure is a ``FormatError`` naming the file, line and first bad field."""
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        raise format_error(e, path, line, what=what) from e


def format_error(e: ValidationError, path: str | Path, line: int | None, *, what: str = "") -> FormatError:
    """A pydantic error as a ``FormatError`` naming the file, line and first bad field."""
    first = e.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or None
    return FormatError(path, line, f"{what}{first['msg']}", field=field)


@dataclass
class ReadReport:
    """What a tolerant read skipped: bad lines (with reasons) and a torn final line, if any."""

    errors: list[FormatError] = field(default_factory=list)
    torn_line: int | None = None
    torn_bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors and self.torn_line is None


def read_jsonl(
    path: str | Path, *, strict: bool = True, report: ReadReport | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each JSON object line of the file at ``path``."""
    return parse_jsonl(Path(path).read_bytes(), path, strict=strict, report=report)


def parse_jsonl(
    data: bytes,
    path: str | Path,
    *,
    strict: bool = True,
    report: ReadReport | None = None,
    first_line: int = 1,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Parse JSONL bytes read from ``path`` (named in errors); line numbers start at ``first_line``."""
    report = report if report is not None else ReadReport()
    lines = data.split(b"\n")
    last_complete = data.endswith(b"\n")
    for i, raw in enumerate(lines):
        lineno = first_line + i
        if not raw.strip():
            continue
        is_last = i == len(lines) - 1
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            if is_last and not last_complete:  # a writer died mid-line: report, keep the rest
                report.torn_line, report.torn_bytes = lineno, len(raw)
                continue
            err = FormatError(path, lineno, f"not valid JSON ({getattr(e, 'msg', e)})")
            if strict:
                raise err from e
            report.errors.append(err)
            continue
        if not isinstance(obj, dict):
            err = FormatError(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
            if strict:
                raise err
            report.errors.append(err)
            continue
        yield lineno, obj


def append_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Append records as JSON lines, durably (flush + fsync). Returns bytes written.

    Under an exclusive ``flock`` of the file, the tail is checked before every append: a partial
    last line can only be a writer that died mid-append (writers hold the lock while they write),
    so it is moved aside (``repair_torn_tail``) and the new lines start on a line of their own."""
    path = Path(path)
    payload = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records).encode()
    with path.open("ab") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            torn = repair_torn_tail(path)
            if torn:
                log.warning(
                    "%s: a torn last line (%d bytes, a writer died mid-append) was moved aside before appending",
                    path,
                    len(torn),
                )
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    return len(payload)


def repair_torn_tail(path: str | Path) -> bytes:
    """If ``path`` ends in a partial line, move those bytes aside and truncate to the last newline.

    Returns the torn bytes (also saved next to the log as ``<name>.torn-<offset>``) so nothing is
    lost; an intact file is left untouched and ``b""`` is returned. The caller holds whatever lock
    its writers append under, so the partial line is a dead writer's, not a live one's.
    """
    path = Path(path)
    if not path.exists():
        return b""
    with path.open("rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return b""
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return b""
        cut = _line_start(f, size)
        f.seek(cut)
        torn = f.read()
        aside = path.with_name(f"{path.name}.torn-{cut}")
        n = 1
        while aside.exists():  # a second crash at the same offset keeps the first one's bytes too
            aside, n = path.with_name(f"{path.name}.torn-{cut}.{n}"), n + 1
        atomic_write_bytes(aside, torn)
        f.truncate(cut)
        f.flush()
        os.fsync(f.fileno())
    return torn


def _line_start(f: BinaryIO, end: int) -> int:
    """The offset just after the last newline before ``end`` (0 if none), scanning back in blocks."""
    pos = end
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        f.seek(pos)
        nl = f.read(step).rfind(b"\n")
        if nl >= 0:
            return pos + nl + 1
    return 0


def line_before(path: str | Path, offset: int) -> bytes:
    """The whole line that ends (newline included) at byte ``offset`` of ``path``; ``b""`` at 0."""
    if offset <= 0:
        return b""
    with Path(path).open("rb") as f:
        start = _line_start(f, offset - 1)
        f.seek(start)
        return f.read(offset - start)


def first_line(path: str | Path) -> bytes:
    """The file's first line, newline included; ``b""`` while it has no complete line."""
    out = bytearray()
    with Path(path).open("rb") as f:
        while block := f.read(65536):
            nl = block.find(b"\n")
            if nl >= 0:
                return bytes(out + block[: nl + 1])
            out += block
    return b""


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old or the new file, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            Path(tmp).unlink()
        raise


def checksum(data: bytes) -> str:
    """A checksum of ``data`` for integrity checks (xxh3-128, ~10x faster than sha256 here)."""
    return "xxh3-128:" + xxhash.xxh3_128_hexdigest(data)


def file_checksum(path: str | Path) -> str:
    """``checksum`` of a file's bytes, read in blocks."""
    h = xxhash.xxh3_128()
    with Path(path).open("rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return "xxh3-128:" + h.hexdigest()


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
