"""Render stage: a plan rendered into an adaptation folder from the Jinja templates (copier)."""
