"""Command-line interface (`noisyseg`)."""
