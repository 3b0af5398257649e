"""Stage 3, ledger: the hash chain (append), its derived tables (derive, rederive), its proof (verify,
checkpoint) and evidence bundles."""
