"""The bank under a careless user and a concurrent writer: nothing acknowledged is lost, typos are errors.

(Probes of the hardening issue; the bank's ordinary behaviour is in tests/memory/bank/test_bank.py.)
"""

from __future__ import annotations

import fcntl
import json
import logging
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from memento_lab.cli import main
from memento_lab.jsonl import FormatError
from memento_lab.memory.bank.bank import Case, CaseBank, max_case_chars
from memento_lab.memory.bank.encoders import CachedEncoder, EmbeddingStore
from memento_lab.memory.bank.formats import import_file

ROOT = Path(__file__).resolve().parents[3]


def make_bank(path: Path, n: int = 2) -> CaseBank:
    bank = CaseBank(path)
    bank.add([Case.from_episode(f"question {i}", float(i % 2), answer=str(i)) for i in range(n)])
    return bank


def log_versions(bank: Path) -> list[int]:
    return [json.loads(line)["version"] for line in (bank / "log.jsonl").read_bytes().splitlines() if line]


def test_opening_a_bank_while_another_writer_appends_loses_no_acknowledged_write(tmp_path: Path):
    """The torn-tail repair used to run without the lock and cut the line a writer was appending
    (which its add() then acknowledged). Here the writer is frozen mid-line, holding the lock as
    ``CaseBank._write`` does, while a second process-like opener (own lock fd) opens the bank."""
    path = tmp_path / "b"
    make_bank(path)
    record = {
        "version": 2,
        "op": "add",
        "cases": [Case.from_episode("in flight", 1.0).model_dump(mode="json")],
    }
    line = (json.dumps(record) + "\n").encode()
    opened: list[CaseBank] = []
    opener = threading.Thread(target=lambda: opened.append(CaseBank(path)))
    with (path / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with (path / "log.jsonl").open("ab") as log:
            log.write(line[: len(line) // 2])
            log.flush()
            opener.start()
            opener.join(1.0)
            opener_waited = opener.is_alive()
            log.write(line[len(line) // 2 :])
        fcntl.flock(lock, fcntl.LOCK_UN)  # the writer's add() returns version 2 here
    opener.join(10)
    assert opener_waited, "the opener repaired the log while a writer held the lock"
    assert log_versions(path) == [1, 2]
    assert not list(path.glob("log.jsonl.torn-*"))
    assert opened[0].version == 2 and len(CaseBank(path)) == 3


# ---------------------------------------------------------------------------- missing bank folders
@pytest.mark.parametrize(
    "argv",
    [["bank", "stats", "{bank}"], ["bank", "export", "{bank}", "{out}"], ["retrieve", "{bank}", "q"]],
    ids=["stats", "export", "retrieve"],
)
def test_a_mistyped_bank_is_an_error_and_creates_nothing(tmp_path, capsys, argv):
    typo, out = tmp_path / "typo-bank", tmp_path / "out.jsonl"
    out.write_text("precious\n")
    code = main([a.format(bank=typo, out=out) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert str(typo) in err and "no bank there" in err
    assert not typo.exists() and out.read_text() == "precious\n"


def test_export_refuses_to_write_inside_a_bank(tmp_path, capsys):
    make_bank(tmp_path / "b")
    make_bank(tmp_path / "other")
    before = (tmp_path / "b" / "log.jsonl").read_bytes()
    for target in (tmp_path / "b" / "log.jsonl", tmp_path / "other" / "x.jsonl"):
        assert main(["bank", "export", str(tmp_path / "b"), str(target)]) == 1
        err = capsys.readouterr().err
        assert "inside the bank folder" in err and str(target.parent) in err
    assert (tmp_path / "b" / "log.jsonl").read_bytes() == before
    assert len(CaseBank(tmp_path / "b")) == 2 and not (tmp_path / "other" / "x.jsonl").exists()


def test_export_of_nothing_leaves_the_target_alone(tmp_path, capsys):
    make_bank(tmp_path / "b")
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    assert main(["bank", "export", str(tmp_path / "b"), str(out), "--version", "0"]) == 1
    assert "nothing to export" in capsys.readouterr().err and out.read_text() == "precious\n"
    assert main(["bank", "export", str(tmp_path / "b"), str(out)]) == 0
    assert len(out.read_text().splitlines()) == 2


# ------------------------------------------------------------------------------------------ import
def test_a_bad_torn_last_line_is_reported_on_import(tmp_path, capsys):
    src = tmp_path / "memory.jsonl"
    good = json.dumps({"case": "what is 2+2", "plan": '{"plan": []}', "case_label": "positive"})
    src.write_text(good + "\n" + '{"case": "half a li')  # no trailing newline, not JSON
    with pytest.raises(FormatError, match=r"memory.jsonl:2: .*incomplete"):
        import_file(src)
    assert main(["bank", "import", str(src), "--out", str(tmp_path / "b"), "--no-embed"]) == 1
    assert "memory.jsonl:2" in capsys.readouterr().err
    assert main(["bank", "import", str(src), "--out", str(tmp_path / "b"), "--no-embed", "--lenient"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["skipped"] == 1 and "skipped:" in out.err and "memory.jsonl:2" in out.err


def test_a_case_over_the_size_limit_is_a_clear_error(tmp_path, monkeypatch, capsys):
    limit = 100_000
    assert max_case_chars() == limit  # the default
    with pytest.raises(ValueError, match="(?s)question.*100001 characters, over the limit of 100000"):
        Case.from_episode("x" * (limit + 1), 1.0)
    monkeypatch.setenv("MEMENTO_MAX_CASE_CHARS", "50")
    with pytest.raises(ValueError, match="(?s)answer.*over the limit of 50"):
        Case.from_episode("fine", 1.0, answer="y" * 51)
    src = tmp_path / "memory.jsonl"
    src.write_text(json.dumps({"case": "z" * 60, "plan": '{"plan": []}', "case_label": "positive"}) + "\n")
    assert main(["bank", "import", str(src), "--out", str(tmp_path / "b"), "--no-embed"]) == 1
    err = capsys.readouterr().err
    assert "memory.jsonl:1" in err and "over the limit of 50" in err


# ------------------------------------------------------------------------------- embeddings cache
class CountingEncoder:
    name, dim = "counting", 3

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts):
        self.calls += len(texts)
        return np.array([[len(t), 1.0, 0.0] for t in texts], dtype=np.float32)


@pytest.mark.parametrize("damage", ["garbage", "malformed"])
def test_a_damaged_embeddings_cache_is_rebuilt_with_a_warning(tmp_path, caplog, damage):
    db = tmp_path / "embeddings.sqlite"
    store = EmbeddingStore(db)
    store.put_many("counting", {f"h{i}": np.ones(3, np.float32) for i in range(200)})
    store.close()
    assert not Path(f"{db}-wal").exists()  # all of it is in the file we damage
    if damage == "garbage":
        db.write_bytes(b"this is not a database" * 100)
    else:  # keep the header, smash the pages: "database disk image is malformed"
        data = bytearray(db.read_bytes())
        data[100:] = b"\xff" * (len(data) - 100)
        db.write_bytes(bytes(data))
    enc = CountingEncoder()
    with caplog.at_level(logging.WARNING):
        cached = CachedEncoder(enc, EmbeddingStore(db))
        vecs = cached.encode(["a", "bb"])
    assert vecs.shape == (2, 3) and enc.calls == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(db) in w and "rebuilt" in w for w in warnings), warnings
    assert list(tmp_path.glob("embeddings.sqlite.damaged-*"))  # the bad file is kept aside
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM emb").fetchone()[0] == 2


# ------------------------------------------------------------ second round (issue 24): the bank's log
def test_a_writer_open_before_another_was_killed_mid_line_loses_nothing(tmp_path: Path, caplog):
    """Writer A has the bank open; writer B is SIGKILLed halfway through a line (its bytes stay in the
    log, no newline); A's next add() must not be glued to those bytes and lost on reload."""
    path = tmp_path / "b"
    a = make_bank(path)
    reader = CaseBank(path, readonly=True)
    torn = json.dumps({"version": 2, "op": "add", "cases": [{"question": "never acknowl"}]}).encode()
    with (path / "log.jsonl").open("ab") as log:  # what B leaves behind: no newline, not JSON
        log.write(torn[: len(torn) // 2])
    with caplog.at_level(logging.WARNING):
        acked = [a.add(Case.from_episode(f"after the kill {i}", 1.0, answer=str(i))) for i in range(3)]
    assert acked == [2, 3, 4]
    again = CaseBank(path)
    assert again.version == 4 and not again.load_report.errors
    assert [c.answer for c in again][-3:] == ["0", "1", "2"]
    assert reader.refresh() == 3 and len(reader) == 5  # a reader open all along sees the same
    aside = list(path.glob("log.jsonl.torn-*"))  # the torn bytes are kept, not silently dropped
    assert len(aside) == 1 and aside[0].read_bytes() == torn[: len(torn) // 2]
    assert any("torn" in r.getMessage() and "log.jsonl" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("field", "make"),
    [
        ("created_at", lambda: Case.from_episode("q", 1.0, created_at=float("nan"))),
        ("created_at", lambda: Case.from_episode("q", 1.0, created_at=float("inf"))),
        ("reward", lambda: Case.from_episode("q", float("nan"))),
        ("metadata", lambda: Case.from_episode("q", 1.0, metadata={"scores": [0.5, float("nan")]})),
    ],
)
def test_a_case_with_a_non_finite_number_is_refused_naming_the_field(field, make):
    with pytest.raises(ValueError, match=rf"(?s){field}.*finite"):
        make()


def test_a_non_finite_number_in_the_log_is_named_and_the_bank_stays_readable(tmp_path: Path):
    path = tmp_path / "b"
    bank = make_bank(path)
    bank.snapshot()
    bad = Case.from_episode("from a hand-edited log", 1.0).model_dump(mode="json")
    bad["created_at"] = "NaN-placeholder"
    line = json.dumps({"version": 2, "op": "add", "cases": [bad]}).replace('"NaN-placeholder"', "NaN")
    with (path / "log.jsonl").open("a") as log:
        log.write(line + "\n")
    again = CaseBank(path)
    assert len(again) == 2 and again.version == 1
    (err,) = again.load_report.errors
    assert "log.jsonl:2" in str(err) and "created_at" in str(err)
    again.add(Case.from_episode("still writable", 0.0))
    again.snapshot()
    assert len(CaseBank(path)) == 3  # and readable after a snapshot


def test_a_snapshot_of_another_bank_is_not_trusted(tmp_path: Path, caplog):
    big = CaseBank(tmp_path / "big")
    big.add([Case.from_episode(f"other bank {i}", 1.0) for i in range(400)])
    big.remove([c.id for c in big.cases()[:21]])
    big.add([Case.from_episode(f"other bank {i}", 1.0) for i in range(400, 420)])
    for _ in range(20):  # a newer version than this bank's: it must be replaced all the same
        big.remove([big.cases()[0].id])
    big.snapshot()
    small = CaseBank(tmp_path / "small")
    for i in range(20):  # a log longer than the other bank's snapshot offset
        small.add(Case.from_episode(f"this bank {i}", 1.0, answer="y" * 8000))
    meta = json.loads((tmp_path / "big" / "snapshot.json").read_text())
    assert meta["log_offset"] <= (tmp_path / "small" / "log.jsonl").stat().st_size
    for name in ("snapshot.json", meta["file"]):
        (tmp_path / "small" / name).write_bytes((tmp_path / "big" / name).read_bytes())
    with caplog.at_level(logging.WARNING):
        again = CaseBank(tmp_path / "small")
    assert len(again) == 20 and again.version == 20
    assert {c.question for c in again} == {f"this bank {i}" for i in range(20)}
    assert any("snapshot" in r.getMessage() and "small" in r.getMessage() for r in caplog.records)
    assert json.loads((tmp_path / "small" / "snapshot.json").read_text())["version"] == 20  # replaced
    assert len(CaseBank(tmp_path / "small")) == 20


def test_a_snapshot_whose_bytes_were_damaged_is_rebuilt_from_the_log(tmp_path: Path, caplog):
    import polars as pl

    bank = CaseBank(tmp_path / "b")
    bank.add([Case.from_episode(f"question {i}", float(i % 2)) for i in range(10)])
    snap = bank.snapshot()
    assert snap is not None
    df = pl.read_parquet(snap)  # a valid Parquet file whose contents no longer match the log
    df.with_columns(pl.lit(True).alias("positive")).write_parquet(snap)
    with caplog.at_level(logging.WARNING):
        again = CaseBank(tmp_path / "b")
    assert again.row_positive(again.live_rows()).tolist() == [bool(i % 2) for i in range(10)]
    assert any(snap.name in r.getMessage() for r in caplog.records)
