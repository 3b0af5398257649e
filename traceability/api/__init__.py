"""Stage 3, API: the HTTP trace API: app factory (``app``), keys and audit (``auth``), dependencies,
problem+json, schemas and one router per resource (``routes``)."""
