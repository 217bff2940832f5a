"""The training stage: configs, targets, loss weights, batches on the device, the loop, runs."""
