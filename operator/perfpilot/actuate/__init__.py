"""Writing changes: Kubernetes objects and pgBouncer (I/O)."""
