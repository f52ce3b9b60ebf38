"""``python -m millrace`` runs the CLI."""

from millrace.cli import app

app()
