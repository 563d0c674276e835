"""Reading the signals: PromQL builders (pure) and the Prometheus reader (I/O)."""
