"""One module per paper method: its loss, its sampler, its model wrapper (colorization first)."""
