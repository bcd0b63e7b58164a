"""Build stage: the target's model on the meta device (the tiny random instance is ``scaffold.tiny``)."""
