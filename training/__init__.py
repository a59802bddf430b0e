"""Training-side tooling for mrsort (Python): synthetic corpus, realism checks, figures."""
