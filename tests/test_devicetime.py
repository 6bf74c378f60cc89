"""Per-device timestamps strictly increase (no servers)."""

from sitewatch.core.devicetime import DeviceClock


def test_same_millisecond_and_clock_steps_back_move_past_the_previous_reading() -> None:
    c = DeviceClock()
    assert [c.stamp("TC01", t) for t in (1000, 1000, 999, 1005)] == [1000, 1001, 1002, 1005]
    assert c.stamp("TC02", 1000) == 1000  # per device
    assert c.adjusted == 2


def test_next_without_record_does_not_advance() -> None:
    c = DeviceClock()
    assert c.stamp("A", 10) == 10
    assert c.next("A", 10) == 11  # e.g. refused by a full spool: not recorded
    assert c.next("A", 10) == 11
    c.record("A", 11)
    assert c.next("A", 11) == 12
