"""Consumers: enricher, decision, notifier, audit and monitor services."""
