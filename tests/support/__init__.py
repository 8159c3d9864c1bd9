"""Shared test helpers and fixtures (a pytest plugin: support.plugin)."""
