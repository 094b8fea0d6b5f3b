"""Quiet hours of a channel: a daily local-time window (`from`, `to`, `timezone`) during which its alert
notifications are held and then delivered as one digest when the window ends.

Pure: no I/O, no clock (the time comes in). The window may cross midnight (22:00 to 07:00). Local times are
resolved with zoneinfo, so a window keeps its wall-clock meaning across daylight-saving changes; an end time
that falls into a spring-forward gap resolves to the instant after the gap (zoneinfo's fold=0)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["QuietHours"]


def _clock_time(value: object) -> time:
    if isinstance(value, time):
        return value
    # YAML 1.1 reads an unquoted 22:00 as the sexagesimal integer 1320: accept it as minutes.
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return time(value // 60, value % 60)
    if isinstance(value, str) and (m := re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)):
        hour, minute = int(m.group(1)), int(m.group(2))
        if hour < 24 and minute < 60:
            return time(hour, minute)
    raise ValueError(f"a time of day is written like '22:00' or '7:30', got {value!r}")


class QuietHours(BaseModel):
    """`quiet_hours: {from: "22:00", to: "07:00", timezone: Europe/Berlin}` on a channel."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    start: time = Field(alias="from", description="local time the quiet hours begin, e.g. '22:00'")
    end: time = Field(alias="to", description="local time they end, e.g. '07:00' (next day when earlier)")
    timezone: str = Field(default="UTC", description="IANA time zone of from/to, e.g. Europe/Berlin")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _time(cls, value: object) -> time:
        return _clock_time(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name like Europe/Berlin)") from None
        return value

    def until(self, now: datetime) -> datetime | None:
        """When the quiet hours that `now` falls in end (aware UTC), or None when `now` is not in them."""
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        today = local.date()
        clock = local.time().replace(tzinfo=None)
        if self.start < self.end:  # within one day: 12:00-14:00
            inside = self.start <= clock < self.end
            end_day = today
        else:  # across midnight: 22:00-07:00
            inside = clock >= self.start or clock < self.end
            end_day = today + timedelta(days=1) if clock >= self.start else today
        if not inside:
            return None
        return datetime.combine(end_day, self.end, tzinfo=zone).astimezone(UTC)
