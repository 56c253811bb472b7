"""``CheckpointWriter``: a list's checkpoint saved at most every ``interval`` seconds
when pages come faster, the newest kept in between and saved when asked (the end
of a list, a failure, the switch to the scroll). The clock is the test's."""

from __future__ import annotations

from pathlib import Path

import orjson

from asyncfetch._cli._checkpoint import Checkpoint, CheckpointWriter

FINGERPRINT = {"list": "users", "per_page": 5, "format": "jsonl"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def after(pages: int) -> Checkpoint:
    return Checkpoint(FINGERPRINT, pages, pages * 5, pages * 100, 9000)


def saved(path: Path) -> int:
    data = orjson.loads(path.read_bytes())
    assert data["fingerprint"] == FINGERPRINT
    assert (data["items"], data["offset"], data["total_count"]) == (
        data["pages"] * 5, data["pages"] * 100, 9000,
    )  # fmt: skip
    return int(data["pages"])


def test_pages_faster_than_the_interval_share_a_save(tmp_path: Path) -> None:
    path, clock = tmp_path / "users.jsonl.partial.checkpoint", Clock()
    writer = CheckpointWriter(str(path), interval=0.02, clock=clock)
    writer.offer(after(1))
    assert saved(path) == 1  # the first page opens the interval
    for pages in range(2, 6):
        clock.now += 0.001
        writer.offer(after(pages))
    assert saved(path) == 1  # within the interval: kept, not saved
    clock.now += 0.02
    writer.offer(after(6))
    assert saved(path) == 6  # the interval is over: saved at once
    clock.now += 0.001
    writer.offer(after(7))
    writer.save_pending()  # the end of the list, a failure, the switch to the scroll
    assert saved(path) == 7
    writer.save_pending()  # nothing new: nothing written
    assert saved(path) == 7


def test_pages_slower_than_the_interval_are_each_saved(tmp_path: Path) -> None:
    path, clock = tmp_path / "users.jsonl.partial.checkpoint", Clock()
    writer = CheckpointWriter(str(path), interval=0.02, clock=clock)
    for pages in range(1, 6):
        writer.offer(after(pages))
        assert saved(path) == pages
        clock.now += 0.05
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left beside it


def test_the_same_bytes_as_before(tmp_path: Path) -> None:
    """The checkpoint's JSON, key for key in the order ``dataclasses.asdict`` gave."""
    path = tmp_path / "c"
    after(3).save(str(path))
    assert path.read_bytes() == orjson.dumps(
        {"version": 1, "fingerprint": FINGERPRINT, "pages": 3, "items": 15, "offset": 300,
         "total_count": 9000}
    )  # fmt: skip
