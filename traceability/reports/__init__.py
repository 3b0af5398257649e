"""Stage 3 (reports): the lot's evidence reports (PDF, XLSX, CSV), all built from the same ``Trace``, each
with its proof and its companion evidence bundle."""
