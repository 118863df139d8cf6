"""tests/greedy.py can fail: a changed token that is no near-tie, or a run that does not stop, is caught."""

import pytest
from saetui.sae.manager import SAEManager
from saetui.steering.generate import SteeringEngine
from saetui.steering.spec import SteeringSpec
from tests.greedy import assert_same_greedy

def test_same_greedy_catches_a_real_divergence_and_a_missed_stop(gemma2, make_sae):
    saes = SAEManager(gemma2); saes.add(make_sae(64, 256, "blocks.1.hook_resid_post"), name="s")
    e = SteeringEngine(gemma2, saes)
    (o,) = e.run("The cat sat on the mat", [[SteeringSpec(7, 5.0)]], max_new_tokens=6)
    bad = list(o.token_ids); bad[3] = (bad[3] + 1) % 100
    with pytest.raises(AssertionError, match="apart"):
        assert_same_greedy(gemma2, saes, [[SteeringSpec(7, 5.0)]], [bad], [o.token_ids])
    with pytest.raises(AssertionError):
        assert_same_greedy(gemma2, saes, [[SteeringSpec(7, 5.0)]], [o.token_ids + [1]], [o.token_ids])
    assert_same_greedy(gemma2, saes, [[SteeringSpec(7, 5.0)]], [o.token_ids], [o.token_ids])
