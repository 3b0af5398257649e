"""Stage 3, API and capture: the defaults and hard bounds of what the API serves at once and capture accepts.

The settings (``COLDCHAIN_API_*``, ``COLDCHAIN_CAPTURE_*``) start from these; ``api.ApiOptions`` and
``capture.CaptureLimits`` carry the values in use.
"""

from __future__ import annotations

from datetime import UTC, datetime

# Requests served at once, each on its one connection. The bound stays below AnyIO's 40 worker threads:
# a request that holds a connection (and its audit write) always finds a thread to run on.
API_POOL_SIZE = 8
API_POOL_SIZE_MAX = 32
# How long a request waits for a connection before it is answered 503, and the longest that may be
# configured: a client (and any proxy before the API) has given up on its request well before two minutes.
API_POOL_TIMEOUT_S = 10.0
API_POOL_TIMEOUT_S_MAX = 120.0
# How long a capture body may take to arrive: the largest document (16 MiB) in under a minute is 2.2
# Mbit/s, slower than any link a partner captures over; a body still arriving after that is stalled. The
# bound is the pool timeout's (a client has given up by then).
API_BODY_TIMEOUT_S = 60.0
API_BODY_TIMEOUT_S_MAX = API_POOL_TIMEOUT_S_MAX

# The deepest value any walk over an event accepts (canonical bytes, the event hash, capture's
# configurable limit): both JSON encoders recurse, as does pydantic-core when the API serves a value (it
# gives up at 255 levels), and Python's recursion limit is 1000; 128 levels is far below all three and
# far beyond any EPCIS event (its standard fields nest 5 levels below the event).
EVENT_MAX_DEPTH = 128

# Capture's defaults hold every GS1 example and the project's own events many times over: its largest
# event, a day of sensor reports, is ~100 kB; the deepest standard path (document > epcisBody >
# eventList > event > sensorElementList > element > sensorReport > report) is 8 levels, leaving 24 for
# extension fields; one list (epcList, a sensor's reports) of 10 000 items is a full day at 10 s.
CAPTURE_DOCUMENT_BYTES = 16 << 20
CAPTURE_EVENT_BYTES = 1 << 20
CAPTURE_DEPTH = 32
# Where the events of a document sit: document (1) > epcisBody (2) > eventList (3) > event (4); the depth
# limit must leave a level below them.
CAPTURE_EVENT_DEPTH = 4
CAPTURE_DEPTH_MIN = CAPTURE_EVENT_DEPTH + 1
CAPTURE_LIST_ITEMS = 10_000
# A partner's clock may run a little ahead of ours: five minutes, NTP's worst case many times over.
CAPTURE_FUTURE_SKEW_S = 300.0
# No cold-chain record this system holds is older (GS1's own examples are dated 2005).
CAPTURE_TIME_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)
# The largest skew capture may be configured to allow, and the derivation's tolerance for an event dated
# after it was recorded: beyond a day no clock is wrong, the date is (see ledger/derive.py).
FUTURE_TOLERANCE_S = 86_400.0
