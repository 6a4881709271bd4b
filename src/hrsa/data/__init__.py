"""Datasets: probe datasets for HRSA, contrastive training data, offline generators."""
