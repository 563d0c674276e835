"""One module per ``perfpilot`` subcommand; each exposes ``register(subparsers)``."""
