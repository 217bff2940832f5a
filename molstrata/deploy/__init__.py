"""The deployment stage: use a trained model on new molecules, and know when not to trust it.

    modelfile    the self-contained model file (format, versions and migrations, safe loading)
    export       a run to a model file, or to a torch.export program (`program`)
    inference    energies of many molecules, chunked; ensemble mean and standard deviation
    structures   an input file's molecules, periodic structures and per-atom data
    predict      `molstrata predict`: structure files to a CSV and an extxyz
    calculator   the ASE calculator (public as `molstrata.ase.Calculator`)

The applicability flags are the evaluation stage's (`molstrata.evaluation.domain`), so that
`evaluate --dataset` flags by the same rules.

It builds on data, models, training and evaluation; only the CLI and `molstrata.ase` import it.
"""
