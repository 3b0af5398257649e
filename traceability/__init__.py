"""Stage 3, ledger and API: EPCIS 2.0 hash-chained ledger and trace queries."""
