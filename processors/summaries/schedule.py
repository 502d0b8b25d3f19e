"""When summaries are due: daily at 06:00 in the business timezone for yesterday, weekly on
Mondays at 06:00 for the Monday-to-Sunday week before. Pure: the clock is an argument.

Catch-up: after downtime every missed period is due (once: the store's unique key guarantees
it), up to `catchup_days` back; on the very first run only the latest period is due, so a new
deployment does not post a year of history.
"""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from processors.calendar import local_midnight
from schemas.alerts import SummaryKind, SummaryPeriod

RUN_AT = time(6, 0)
DAY, WEEK = timedelta(days=1), timedelta(days=7)


def daily_period(day: date, tz: ZoneInfo) -> SummaryPeriod:
    return SummaryPeriod(
        kind=SummaryKind.DAILY,
        label=day.isoformat(),
        start=local_midnight(day, tz),
        end=local_midnight(day + DAY, tz),
        timezone=tz.key,
    )


def weekly_period(monday: date, tz: ZoneInfo) -> SummaryPeriod:
    year, week, _ = monday.isocalendar()
    return SummaryPeriod(
        kind=SummaryKind.WEEKLY,
        label=f"{year}-W{week:02d}",
        start=local_midnight(monday, tz),
        end=local_midnight(monday + WEEK, tz),
        timezone=tz.key,
    )


def previous_period(period: SummaryPeriod, tz: ZoneInfo) -> SummaryPeriod:
    """The period just before (for the movements: yesterday vs the day before)."""
    first_day = period.start.astimezone(tz).date()
    if period.kind is SummaryKind.DAILY:
        return daily_period(first_day - DAY, tz)
    return weekly_period(first_day - WEEK, tz)


def _runs_at(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, RUN_AT, tzinfo=tz)


def latest_due_day(now: datetime, tz: ZoneInfo) -> date:
    """The last day whose summary is due at `now` (yesterday once 06:00 local has passed)."""
    today = now.astimezone(tz).date()
    return today - DAY if now >= _runs_at(today, tz) else today - 2 * DAY


def latest_due_week(now: datetime, tz: ZoneInfo) -> date:
    """The Monday of the last week whose summary is due at `now`."""
    today = now.astimezone(tz).date()
    monday = today - timedelta(days=today.weekday())
    if now < _runs_at(monday, tz):
        monday -= WEEK
    return monday - WEEK


def due_periods(
    now: datetime,
    tz: ZoneInfo,
    last_day: date | None,
    last_week: date | None,
    catchup_days: int,
) -> list[SummaryPeriod]:
    """Every period due at `now` that was not produced yet, oldest first.

    `last_day` / `last_week` are the newest periods already produced (None: none yet)."""
    due = []
    newest_day = latest_due_day(now, tz)
    oldest_day = newest_day - timedelta(days=max(catchup_days, 1) - 1)
    day = newest_day if last_day is None else max(last_day + DAY, oldest_day)
    while day <= newest_day:
        due.append(daily_period(day, tz))
        day += DAY
    newest_week = latest_due_week(now, tz)
    oldest_week = newest_week - WEEK * (max(catchup_days // 7, 1) - 1)
    week = newest_week if last_week is None else max(last_week + WEEK, oldest_week)
    while week <= newest_week:
        due.append(weekly_period(week, tz))
        week += WEEK
    return sorted(due, key=lambda p: (p.end, p.kind.value))
