"""Stage 3, EPCIS: the EPCIS 2.0 events of the ledger: builders, schema validation, event hash, JCS, capture,
the events query and the multimodal vocabulary."""
