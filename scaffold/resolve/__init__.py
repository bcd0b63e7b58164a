"""Resolve stage: a target (``transformers:<type>``, a folder, a Hub id) to a config and the code it may run."""
