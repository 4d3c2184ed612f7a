"""Tables of tasks read from disk: JSONL, CSV/TSV, Parquet, and Hugging Face ``datasets`` datasets.

    table = read_table("data/qa.csv")                 # the format from the extension (or a folder: datasets)
    for where, row in table.rows: ...                 # where: the line (JSONL, CSV) or the row index

Every reader yields plain rows (``dict`` column -> Python value) with where each row is, so a bad
value is reported as ``file:line`` (text formats) or ``file: row N`` (Parquet, datasets; N counts
from 0 as in ``ds[N]``). CSV values stay strings (``"007"`` is not the number 7).

Hugging Face datasets come from the disk only, never from the Hub at run time: a folder written by
``Dataset.save_to_disk`` (``datasets.load_from_disk``), or a dataset name already in the local cache
(``format=hf``; read with ``HF_HUB_OFFLINE=1``). ``datasets`` is the optional extra
``memento-lab[datasets]``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from memento_lab.jsonl import FormatError, read_jsonl

Format = Literal["jsonl", "csv", "tsv", "parquet", "hf"]
FORMATS: tuple[str, ...] = ("jsonl", "csv", "tsv", "parquet", "hf")
EXTENSIONS: dict[str, Format] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


class RowError(FormatError):
    """Bad input in a table without lines (Parquet, datasets): names the file, the row and the field."""

    def __init__(self, path: str | Path, row: int, message: str, field: str | None = None):
        super().__init__(path, None, message, field=field)
        self.row = row
        what = f" field '{field}':" if field else ""
        self.args = (f"{path}: row {row}:{what} {message}",)


@dataclass
class Table:
    """Rows read from one source: ``rows`` are ``(where, row)``; ``columns`` is None where rows may
    differ in their keys (JSONL); ``by_line`` says whether ``where`` is a line or a row index."""

    path: str
    name: str  # the default family and id prefix: the file's stem, or the dataset's name
    rows: list[tuple[int, dict[str, Any]]]
    columns: list[str] | None
    by_line: bool

    def error(self, where: int | None, message: str, field: str | None = None) -> FormatError:
        """A ``FormatError`` naming this table, the line or row ``where`` and the field."""
        if where is None or self.by_line:
            return FormatError(self.path, where, message, field=field)
        return RowError(self.path, where, message, field=field)


def table_format(source: str, given: str | None = None) -> Format:
    """The format of ``source``: ``given``, else from its extension (a folder: a saved datasets dataset)."""
    if given:
        if given not in FORMATS:
            raise ValueError(f"unknown table format {given!r}; choose one of {', '.join(FORMATS)}")
        return given  # type: ignore[return-value]
    path = Path(source)
    if path.is_dir():
        return "hf"
    if path.suffix.lower() in EXTENSIONS:
        return EXTENSIONS[path.suffix.lower()]
    if not path.exists():
        raise FileNotFoundError(
            f"task file {source} does not exist (a Hugging Face dataset in the local cache: add format=hf)"
        )
    raise ValueError(
        f"{source}: cannot tell the table format from its extension; add format=FORMAT ({', '.join(FORMATS)})"
    )


def read_table(
    source: str, *, format: str | None = None, split: str | None = None, subset: str | None = None
) -> Table:
    """Every row of the table at ``source`` (see the module docstring for the formats)."""
    fmt = table_format(source, format)
    if fmt == "hf":
        return _read_hf(source, split=split, subset=subset)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"task file {source} does not exist")
    if split or subset:
        raise ValueError(f"{source}: split and subset apply to Hugging Face datasets only (format=hf)")
    if fmt == "jsonl":
        return Table(str(path), path.stem, list(read_jsonl(path)), None, by_line=True)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        data = pq.read_table(path)
        return Table(
            str(path), path.stem, list(enumerate(data.to_pylist())), data.column_names, by_line=False
        )
    return _read_csv(path, delimiter="\t" if fmt == "tsv" else ",")


def _read_csv(path: Path, *, delimiter: str) -> Table:
    """A CSV/TSV file with a header line; every row's line is the one it ends on (quoted fields may span lines)."""
    with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's byte-order mark
        reader = csv.DictReader(f, delimiter=delimiter)
        columns = list(reader.fieldnames or [])
        table = Table(str(path), path.stem, [], columns, by_line=True)
        if not columns:
            raise table.error(None, "has no header line (the first line names the columns)")
        twice = sorted({c for c in columns if columns.count(c) > 1})
        if twice:
            raise table.error(1, f"the header names a column more than once: {twice}")
        try:
            for row in reader:
                if None in row:  # DictReader keeps the surplus values of a row under the key None
                    raise table.error(reader.line_num, f"has more values than the header's {len(columns)}")
                table.rows.append((reader.line_num, row))
        except csv.Error as e:
            raise table.error(reader.line_num, f"not valid CSV ({e})") from e
    return table


def _read_hf(source: str, *, split: str | None, subset: str | None) -> Table:
    """A ``save_to_disk`` folder, or a dataset name from the local Hugging Face cache (never fetched)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # read before datasets is first imported
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from memento_lab.extras import require

    datasets: Any = require("datasets", extra="datasets", what=f"{source}: reading a Hugging Face dataset")
    path = Path(source)
    if path.is_dir():
        if subset:
            raise ValueError(f"{source}: subset applies to a cached dataset name, not a saved folder")
        data: Any = datasets.load_from_disk(str(path))
        name = path.name
    else:
        if not datasets.config.HF_HUB_OFFLINE:
            raise ValueError(
                f"{source}: a dataset name is read from the local Hugging Face cache only, never fetched; "
                "HF_HUB_OFFLINE is off in this process (unset it or set it to 1), or save the dataset "
                "with save_to_disk and give its folder"
            )
        try:
            data = datasets.load_dataset(source, subset, split=split)
        except Exception as e:  # offline: a name not in the cache fails here, with nothing fetched
            raise FileNotFoundError(
                f"{source}: not a folder and not a dataset in the local Hugging Face cache "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
            ) from e
        name = source.rstrip("/").split("/")[-1]
    if isinstance(data, datasets.DatasetDict):
        data = _one_split(data, source, split)
    elif split:
        raise ValueError(f"{source}: split={split!r} given, but the dataset has no splits")
    suffix = f"[{split}]" if split else ""
    rows = list(enumerate(_rows(data)))
    return Table(source + suffix, name, rows, list(data.column_names), by_line=False)


def _one_split(data: Any, source: str, split: str | None) -> Any:
    names = list(data)
    if split is None and len(names) == 1:
        return data[names[0]]
    if split not in names:
        raise ValueError(f"{source}: choose a split with split=NAME: {', '.join(names)} (got {split!r})")
    return data[split]


def _rows(data: Any) -> Iterator[dict[str, Any]]:
    yield from data  # a datasets.Dataset yields one dict per row
