"""Pydantic models: events in, findings and decisions out, settings. No I/O."""
