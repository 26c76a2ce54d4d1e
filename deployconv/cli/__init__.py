"""The command line: `app` (deployconv.cli.app) registers one module per command group; shared options live in
options.py and the one error handler in errors.py. The top layer: it imports everything below and nothing imports it."""
