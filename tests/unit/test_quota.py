from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from handler import quota

UTC_ZONE = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")


def test_the_day_is_the_local_date_in_the_configured_zone():
    late_evening_utc = datetime(2026, 11, 25, 23, 30, tzinfo=UTC)
    assert quota.day_key(late_evening_utc, UTC_ZONE) == "2026-11-25"
    assert quota.day_key(late_evening_utc, PARIS) == "2026-11-26"


def test_the_count_resets_at_the_next_local_midnight():
    now = datetime(2026, 11, 25, 20, 40, tzinfo=UTC)
    assert quota.next_reset(now, UTC_ZONE) == datetime(2026, 11, 26, tzinfo=UTC)
    assert quota.next_reset(now, PARIS) == datetime(2026, 11, 26, tzinfo=PARIS)
    assert quota.describe_reset(now, UTC_ZONE) == "in 3 h 20 min (00:00 UTC)"


def test_reset_across_a_daylight_saving_change():
    before_change = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)  # 01:30 in Paris, DST ends 25th
    reset = quota.next_reset(before_change, PARIS)
    assert reset.date().isoformat() == "2026-10-26"
    assert reset.utcoffset().total_seconds() == 3600


def test_counters_expire_well_after_their_day():
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert quota.counter_expiry(now, UTC_ZONE) > quota.next_reset(now, UTC_ZONE).timestamp()


def test_effective_limit_by_status():
    assert quota.effective_limit("default", None, 10) == 10
    assert quota.effective_limit("default", 3, 10) == 3
    assert quota.effective_limit("unlimited", 3, 10) is None
    assert quota.effective_limit("blocked", None, 10) == 0


def test_usage_left_never_goes_below_zero():
    assert quota.Usage(used=4, limit=10).left == 6
    assert quota.Usage(used=12, limit=10).left == 0
    assert quota.Usage(used=12, limit=None).left is None
