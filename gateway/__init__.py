"""Stage 1 (ingest): MQTT gateway that decodes, validates and stores device telemetry."""
