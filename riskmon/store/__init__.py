"""Durable state on a local SQLite file."""
