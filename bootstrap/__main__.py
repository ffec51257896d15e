"""``python -m bootstrap`` runs the CLI."""

from bootstrap.cli import main

main()
