"""Simulators: homes and devices that speak the real payloads, with incidents on demand."""
