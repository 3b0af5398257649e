"""Composition root: CLI, settings, embedded runtime, migrations, benchmarks."""
