"""Stage 4, dashboards: Grafana provisioning as code."""
