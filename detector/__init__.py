"""Detector: turns normalised readings into findings, in event time."""
