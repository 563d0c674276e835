.PHONY: simulate test bench crd install-manifests

# Set up .venv and replay the bundled WorldCup98 slice through perfpilot and the baselines.
simulate:
	scripts/setup.sh sim
	.venv/bin/perfpilot simulate

# Set up everything (virtualenv, Debian packages) and run every check and test.
test:
	scripts/test.sh

# Regenerate the committed CRD from the models, and the chart's copy of it.
crd:
	scripts/setup.sh sim
	.venv/bin/perfpilot crd > crds/performanceprofiles.perfpilot.io.yaml
	cp crds/performanceprofiles.perfpilot.io.yaml charts/perfpilot/crds/

# Regenerate the plain install manifests (manifests/install/perfpilot.yaml) from the Helm chart charts/perfpilot,
# rendered with helm-python-sdk (a test extra: no helm binary needed).
install-manifests:
	scripts/setup.sh test
	.venv/bin/python scripts/render_install.py

# Benchmarks print numbers (nothing is asserted): decision quality over the scenario x trace matrix
# (the traces of ../shared/traces beside the checkout; results rewrite bench/results/*.json), the queries
# and seconds of one observe cycle, and the seconds, memory, queries and API calls of one operator cycle, for
# 1, 100 and 1,000 profiles on a real Prometheus (installed as for test).
bench:
	scripts/packages.sh prometheus
	scripts/setup.sh test,sim
	.venv/bin/python bench/decision_quality.py
	.venv/bin/python bench/decision_quality.py --held-out
	.venv/bin/python bench/decision_quality.py --further
	.venv/bin/python bench/decision_quality.py --explored
	.venv/bin/python bench/decision_quality.py --objective Reliability
	.venv/bin/python bench/observe_cycle.py
	.venv/bin/python bench/operator_cycle.py
