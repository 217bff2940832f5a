"""The deployment stage: use a trained model on new molecules, and know when not to trust it.

    modelfile    the self-contained model file (format, versions and migrations, safe loading)
    export       a run to a model file, or to a torch.export program (`program`)
    domain       the training domain in a model file, and the applicability flags
    inference    energies of many molecules, chunked; ensemble mean and standard deviation
    predict      `molstrata predict`: structure files to a CSV and an extxyz
    calculator   the ASE calculator (public as `molstrata.ase.Calculator`)

It builds on data, models, training and evaluation; only the CLI and `molstrata.ase` import it.
"""
