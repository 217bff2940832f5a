"""molstrata models in ASE: `Calculator(model_file)` gives energies (eV) and forces (eV/Å).

    from molstrata.ase import Calculator
    atoms.calc = Calculator("model.pt")        # a file written by `molstrata export`
    atoms.get_potential_energy(), atoms.get_forces()
"""

from molstrata.deploy.calculator import Calculator

__all__ = ["Calculator"]
