"""``python -m bootstrap`` runs the CLI."""

from bootstrap.cli.main import main

main()
