"""stock_run's check: the prediction test. The generated test quantizes the tiny instance with the adapted
AutoRound, so a crash or an under-quantization no other mode explains fails it; its fix is a human's."""

from __future__ import annotations

from scaffold.modes.contract import Check

CHECK = Check(test="test_autoround_quantizes_exactly_what_was_predicted")
