"""Stage 4 (dashboards): the Grafana folder every board and alert rule lives in (uid and title)."""

from __future__ import annotations

from typing import Final

FOLDER_UID: Final = "coldchain"
FOLDER_TITLE: Final = "冷链 / Cold chain"
