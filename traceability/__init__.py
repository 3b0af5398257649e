"""Stage 3, traceability: EPCIS 2.0 events (``epcis``), the hash-chained ledger (``ledger``), lot traces
(``trace``) and the HTTP API (``api``); ``worker`` turns RFID reads and verdicts into ledger events."""
