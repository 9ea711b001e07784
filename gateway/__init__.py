"""Gateway: authenticates, validates and normalises device messages."""
