"""carebed: emergency monitoring and alerting for elders who live alone."""

__version__ = "0.1.0"
