"""Alerting: findings become alerts, alerts reach responders, operators see it all."""
