"""The copier and Jinja templates, shipped in the wheel as package ``scaffold.templates``."""
