"""Stage 2 (verdicts): SQL of the alarm duties: open alarms due a notice, and the notices' outbox."""

from __future__ import annotations

from typing import Final

# Open (unacknowledged, unresolved) alarms and how far down their recipient levels they have gone; the
# escalator decides in Python which are due, then takes those under lock (DUTY_LOCK) and re-checks.
DUTY_CANDIDATES: Final = """
SELECT alarm_id, severity, product_class, notify_level, notified_at
FROM alarm WHERE state = 'open' ORDER BY alarm_id
"""

# The alarm, still open and still at the level the decision was made on, locked (or skipped when another
# escalator or the worker holds it: it is looked at again on the next tick).
DUTY_LOCK: Final = """
SELECT alarm_id FROM alarm
WHERE alarm_id = %(alarm_id)s AND state = 'open' AND notify_level = %(notify_level)s
FOR UPDATE SKIP LOCKED
"""

DUTY_ADVANCE: Final = """
UPDATE alarm SET notify_level = %(level)s, notified_at = %(now)s WHERE alarm_id = %(alarm_id)s
"""

NOTICE_INSERT: Final = """
INSERT INTO alarm_notice (alarm_id, level, person, channel, address, next_attempt_at)
VALUES (%(alarm_id)s, %(level)s, %(person)s, %(channel)s, %(address)s, %(now)s)
ON CONFLICT (alarm_id, level, person, channel) DO NOTHING
"""

# The next pending notice whose attempt is due, locked for the duration of its delivery, with its alarm.
NOTICE_NEXT: Final = """
SELECT n.notice_id, n.level, n.person, n.channel, n.address, n.attempts,
       a.alarm_id, a.asset_id, a.rule_id, a.kind, a.severity, a.state, a.product_class, a.pack_version,
       a.reason, a.condition_start, a.condition_end, a.peak_c, a.opened_at
FROM alarm_notice n JOIN alarm a USING (alarm_id)
WHERE n.status = 'pending' AND n.next_attempt_at <= %(now)s
ORDER BY n.next_attempt_at, n.notice_id
LIMIT 1
FOR UPDATE OF n SKIP LOCKED
"""

NOTICE_SENT: Final = """
UPDATE alarm_notice SET status = 'sent', sent_at = clock_timestamp(), attempts = attempts + 1,
    last_error = NULL
WHERE notice_id = %(notice_id)s
"""

NOTICE_CANCELLED: Final = """
UPDATE alarm_notice SET status = 'cancelled', last_error = %(why)s WHERE notice_id = %(notice_id)s
"""

NOTICE_FAILED: Final = """
UPDATE alarm_notice SET attempts = attempts + 1, last_error = %(error)s,
    next_attempt_at = %(now)s + make_interval(secs => %(wait_s)s)
WHERE notice_id = %(notice_id)s
"""

NOW: Final = "SELECT clock_timestamp()"
