"""Metadata random forest: trained with scikit-learn on what `mrsort dataset` extracts."""
