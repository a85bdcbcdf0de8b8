import pickle

import gymnasium as gym
import numpy as np
import pytest

import hjepa
from conftest import MODES, SCENES, actions, same


def trajectory(env, acts):
    return [env.step(a) for a in acts]


def equal_steps(a, b):
    for (o1, r1, te1, tr1, i1), (o2, r2, te2, tr2, i2) in zip(a, b):
        assert same(o1, o2)
        assert np.float64(r1).tobytes() == np.float64(r2).tobytes()
        assert (te1, tr1) == (te2, tr2)
        assert same(i1["state"], i2["state"])
        assert i1["steps"] == i2["steps"]


@pytest.mark.parametrize("replay", [False, True], ids=["cached", "replayed"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scene", SCENES)
def test_restore_then_step_is_bitwise_equal(scene, mode, replay):
    env = gym.make(hjepa.scene_id(scene), observation=mode).unwrapped
    env.reset(seed=21)
    trajectory(env, actions(env.action_space, 7, 0))
    state = env.get_state()
    acts = actions(env.action_space, 12, 1)
    original = trajectory(env, acts)
    if replay:
        # A fresh process would have no cached snapshot: the bytes alone must do.
        hjepa._hjepa._clear_snapshot_cache()
    state = pickle.loads(pickle.dumps(state))
    other = gym.make(hjepa.scene_id(scene), observation=mode).unwrapped
    other.set_state(state)
    equal_steps(original, trajectory(other, acts))
    env.set_state(state)  # the same env, moved on since
    equal_steps(original, trajectory(env, acts))


def test_snapshot_keeps_the_seed_chain(push_t):
    push_t.reset(seed=5)
    push_t.step(np.zeros(2, np.float32))
    state = push_t.get_state()
    push_t.reset(seed=99)
    push_t.set_state(state)
    assert push_t.seed_of_episode == 5
    assert push_t.reset()[1]["seed"] == hjepa.next_seed(5)


def test_bad_snapshot_bytes_are_value_errors(push_t):
    push_t.reset(seed=0)
    state = push_t.get_state()
    with pytest.raises(ValueError, match="not an hjepa snapshot"):
        push_t.set_state(b"garbage")
    with pytest.raises(ValueError, match="truncated"):
        push_t.set_state(state[:-3])
    wall = gym.make("hjepa/Wall-v0").unwrapped
    with pytest.raises(ValueError, match="another scene"):
        wall.set_state(state)
    # A failed restore leaves the env needing a reset.
    with pytest.raises(gym.error.ResetNeeded):
        push_t.step(np.zeros(2, np.float32))


def test_get_state_before_reset_is_a_clear_error():
    env = gym.make("hjepa/PushT-v0").unwrapped
    with pytest.raises(gym.error.ResetNeeded):
        env.get_state()
