"""Command-line recipes: one per ``genmodels fit MODEL``. Each module here defines ``Recipe``
objects; ``genmodels.cli.RECIPES`` names them so that the command imports only what it runs."""
