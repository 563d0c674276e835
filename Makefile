.PHONY: simulate test bench crd

# Set up .venv and replay the bundled WorldCup98 slice through perfpilot and the baselines.
simulate:
	scripts/setup.sh sim
	.venv/bin/perfpilot simulate

# Set up everything (virtualenv, Debian packages) and run every check and test.
test:
	scripts/test.sh

# Regenerate the committed CRD from the models.
crd:
	scripts/setup.sh sim
	.venv/bin/perfpilot crd > crds/performanceprofiles.perfpilot.io.yaml

# The decision-quality benchmark over the scenario x trace matrix.
bench:
	scripts/setup.sh sim
	.venv/bin/python bench/decision_quality.py
