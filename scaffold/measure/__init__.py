"""Measure/verify stage: stock AutoRound and the adaptation run on the tiny instance, counted on the export."""
