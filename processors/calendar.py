"""Business-timezone days and weeks as UTC intervals (pure; zoneinfo handles DST)."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The start of `day` in `tz`, as an aware UTC datetime (23- and 25-hour days included)."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    return local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz)


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def days_closed_between(after: datetime, upto: datetime, tz: ZoneInfo) -> list[date]:
    """Local days whose end lies in (after, upto]: the days that became complete."""
    days = []
    day = local_date(after, tz) - timedelta(days=1)
    while True:
        start, end = day_bounds(day, tz)
        if end > upto:
            break
        if end > after:
            days.append(day)
        day += timedelta(days=1)
    return days
