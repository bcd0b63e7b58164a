"""autoround-scaffold: make a new LLM architecture work with Intel's AutoRound quantizer."""

__version__ = "0.2.0"
