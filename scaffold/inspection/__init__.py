"""Inspect stage: static walk and dynamic probes on the tiny instance, turned into typed findings."""
