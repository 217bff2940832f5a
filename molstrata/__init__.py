"""molstrata: SchNet models for molecular properties, with errors stratified by size and element."""

__version__ = "0.1.0"
