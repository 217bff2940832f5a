"""The evaluation stage: predictions, stratified metrics with confidence intervals, and the
metrics report format (`metrics.json` and its CSVs)."""
