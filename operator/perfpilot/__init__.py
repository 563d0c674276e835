"""perfpilot: a Kubernetes operator that tunes autoscaling, resources and pgBouncer pools from the SLO."""

__version__ = "0.1.0"
