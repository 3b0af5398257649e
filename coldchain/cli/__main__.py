"""Composition root: `python -m coldchain.cli`, the same as the `coldchain` console script."""

from coldchain.cli.root import main

main()
