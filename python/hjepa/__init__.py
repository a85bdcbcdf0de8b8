"""hjepa: a 2D physics sandbox (rapier2d) for world-model planning agents, as Gymnasium
environments, with hjepa's datasets and evaluation protocol.

    import gymnasium as gym, hjepa
    env = gym.make("hjepa/PushT-v0", observation="pixels", render_mode="rgb_array")
    env = hjepa.make_env(scene="two_rooms")            # any shipped name, .ron path or RON text
    envs = gym.make_vec("hjepa/PushT-v0", num_envs=16, vectorization_mode="vector_entry_point")
    hjepa.collect("push_t", "near-body", episodes=100, out="data/push_t")  # = `hjepa collect`
    ds = hjepa.Dataset("data/push_t")                   # memory-mapped shards
    hjepa.evaluate(my_policy, "push_t", episodes=100)   # `hjepa eval`'s episodes

Importing the package registers `hjepa/<Scene>-v0` for every shipped scene (and
`hjepa/Scene-v0`, which takes `scene=`).
"""

from . import _hjepa
from ._hjepa import check_scene, next_seed, shipped_scenes
from .data import Dataset, Episode, collect
from .envs import HjepaEnv, make_env, register_envs, scene_id
from .evaluation import evaluate
from .vector import HjepaVectorEnv, make_vec

__version__ = _hjepa.__version__

__all__ = [
    "Dataset",
    "Episode",
    "HjepaEnv",
    "HjepaVectorEnv",
    "check_scene",
    "collect",
    "evaluate",
    "make_env",
    "make_vec",
    "next_seed",
    "register_envs",
    "scene_id",
    "shipped_scenes",
]

register_envs()
