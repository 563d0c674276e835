"""A valid PerformanceProfile file's text for the command-line tests (the module name is unique across the test
tree: pytest's importlib mode imports it through the folder conftest puts on ``sys.path``)."""

PROFILE = """\
apiVersion: perfpilot.io/v1alpha1
kind: PerformanceProfile
metadata: {name: api, namespace: shop}
spec:
  targetRef: {kind: Deployment, name: api}
"""
