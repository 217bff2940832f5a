"""Hyper-parameter sweeps on Optuna: a search space over any training option, trials judged on
the VALIDATION split's stratified metrics, pruning, resumable and shareable storage.

It sits above evaluation (its objectives are stratified metrics), like the study:
config.py (the sweep file), objectives.py, storage.py, runner.py (run_sweep), outputs.py."""
