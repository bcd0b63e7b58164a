"""forward_coverage's check: the prediction test. The unreached stack's layers are in the predicted packing,
so AutoRound packs them only when the generated forward runs that stack; nothing in TEST_DATA is needed."""

from __future__ import annotations

from scaffold.modes.contract import Check

CHECK = Check(test="test_autoround_quantizes_exactly_what_was_predicted")
