"""Converters from public datasets of people living alone into `carebed replay` input."""
