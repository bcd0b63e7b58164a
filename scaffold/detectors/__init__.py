"""Detectors: one module per failure mode, each with ``detect(ctx: InspectContext) -> list[Finding]``.

Static detectors (block_detection, layer_types, fused_moe, ignore_layers, mllm_misdetection) read the
meta skeleton and use the tiny instance only for probes; dynamic ones (forward_coverage,
shared_cache_keys, block_replay) need the tiny instance. See ``scaffold/modes.py``.
"""
