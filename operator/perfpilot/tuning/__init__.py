"""The pure tuning engine: guide tables, classification, decide(), guardrails and verdicts.

Nothing here does I/O, logs or reads the clock (enforced by import-linter, see ``.importlinter``).
"""
