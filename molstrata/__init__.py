"""molstrata: SchNet and PaiNN models for molecular properties, with errors stratified by size
and element.

From Python (see `molstrata.api`):

    import molstrata
    run = molstrata.train("quick", epochs=3, max_molecules=500)
    metrics = run.evaluate()                          # metrics.mae_meV, metrics.per_size
    molstrata.evaluate_predictions("mace_out.xyz")    # any model's energies, stratified
    molstrata.compare([run, molstrata.Run.open("runs/other")])
    molstrata.compare_predictions(["mace.xyz", "nequip.xyz"], predicted=["MACE_energy",
                                  "nequip_energy"])   # models on the same structures
    molstrata.load_model(run.export("model.pt")).predict(atoms).values   # eV
    molstrata.run_study("quick", out="results/study")

These names are loaded on first use, so that `import molstrata` and the command line's
`--help` import neither torch nor matplotlib.
"""

__version__ = "0.1.0"

API = ("train", "resume", "compare", "compare_predictions", "evaluate_predictions", "load_model",
       "run_study", "learning_curve", "Run", "Metrics", "RunComparison", "Model", "Prediction",
       "Records")
"""The public names of `molstrata.api`, available as `molstrata.NAME`."""

__all__ = [*API, "__version__"]


def __getattr__(name: str):
    from importlib import import_module

    if name == "study":  # the package of the study's stages (a study runs: run_study)
        return import_module("molstrata.study")
    if name in API:
        value = getattr(import_module("molstrata.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'molstrata' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *API})
