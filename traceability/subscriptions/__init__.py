"""Stage 3, EPCIS subscriptions: named queries, webhook subscriptions to them, and their delivery."""
