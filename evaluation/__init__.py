"""Offline evaluation: simulated populations, replays of files and public datasets, scored against ground truth."""
