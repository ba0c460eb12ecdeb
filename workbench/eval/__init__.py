"""Evaluation: datasets with ground truth, scorers, the resumable harness, metrics and the HTML report."""
