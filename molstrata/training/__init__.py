"""The training stage: configs, targets, loss weights, batches on the device, the loop, runs."""

LOSS_WEIGHTINGS = ("none", "size", "size_frequency", "inverse_frequency")
"""The names of training.loss_weighting (`weights.LOSS_WEIGHTS` holds their functions, in this
order, checked by a test). Here, at the stage's door, so that the command line lists them
without importing numpy."""
