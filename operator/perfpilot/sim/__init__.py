"""The simulator: HPA model, cluster model, trace replay, baselines, report and plot."""
