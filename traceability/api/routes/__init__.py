"""Stage 3, API: one APIRouter per resource (health, trace, ledger, epcis, alarms)."""
