"""Developer tools for the tool itself: the mode audit and ``scaffold dev add-mode`` (a source checkout only)."""
