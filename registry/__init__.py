"""Stage 0½, reference data: the registry owner: parties, locations, assets, devices, mounts, lots."""
