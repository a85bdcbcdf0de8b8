import gymnasium as gym
import numpy as np
import pytest

import hjepa

SCENES = hjepa.shipped_scenes()
MODES = ("state", "pixels")


def short_scene(name: str = "two_rooms", steps: int = 6) -> str:
    """A shipped scene's RON text with a short episode (truncation within a few steps)."""
    text = hjepa._hjepa.shipped_scene_text(name)
    old = "episode_steps: 200,"
    assert old in text
    return text.replace(old, f"episode_steps: {steps},")


@pytest.fixture
def push_t():
    env = gym.make("hjepa/PushT-v0").unwrapped
    yield env
    env.close()


def actions(space, n, seed):
    space.seed(seed)
    return [space.sample() for _ in range(n)]


def same(a, b) -> bool:
    """Bitwise equality of observations (dicts of arrays) or arrays."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
