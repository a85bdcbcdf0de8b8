"""`HjepaVectorEnv`: N hjepa sandboxes stepped on Rust threads, as a `gymnasium.vector.VectorEnv`."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from . import _hjepa
from .envs import can_render, check_arguments, registered, spaces_of

#: Per-env info entries (each with its `_name` mask, as Gymnasium's vector infos have).
INFO_KEYS = ("success", "distance", "cost", "steps", "action_clipped", "blew_up", "state", "seed")


class HjepaVectorEnv(VectorEnv):
    """N sandboxes of one scene, stepped in Rust worker threads with the GIL released, the
    results written into numpy arrays allocated once.

    Autoreset is Gymnasium's next-step mode: a sub-env that terminated or truncated is reset
    at the next `step` (its action ignored; reward 0, not terminated, not truncated, `cost`
    masked out of the info). Its seed is the next of its chain (`hjepa.next_seed`), so sub-env
    i equals a single `HjepaEnv` reset with the same seed and then reset without one at each
    episode end.

    Args are those of `HjepaEnv`, plus `num_envs`, `threads` (worker threads; default the
    machine's cores, at most `num_envs`) and `copy` (return copies of the arrays, default;
    False returns the arrays themselves, which the next call overwrites).
    """

    def __init__(
        self,
        num_envs: int,
        scene: str | None = None,
        observation: str = "state",
        render_mode: str | None = None,
        action_units: str = "normalized",
        threads: int | None = None,
        copy: bool = True,
    ):
        check_arguments(scene, render_mode)
        self._core = _hjepa.VecEnv(scene, int(num_envs), observation, action_units, threads)
        self.scene_spec: dict = self._core.spec
        self.num_envs = int(num_envs)
        self.single_action_space, self.single_observation_space = spaces_of(self.scene_spec)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.render_mode = render_mode
        self.metadata = {
            "render_modes": ["rgb_array"],
            "render_fps": 1.0 / self.scene_spec["env_dt"],
            "autoreset_mode": AutoresetMode.NEXT_STEP,
        }
        self.max_episode_steps: int = self.scene_spec["max_env_steps"]
        self.copy = copy
        self._buf = self._core.buffers
        self._seeded = np.zeros(self.num_envs, dtype=bool)
        self._started = False

    def reset(self, *, seed: int | list | None = None, options: dict | None = None):
        """Resets every sub-env (or those `options["reset_mask"]` marks). `seed`: an int
        (sub-env i gets seed + i), a list (one per sub-env, None for unseeded) or None
        (each sub-env continues its seed chain, or draws from `np_random` at first)."""
        self._check_open()
        super().reset(seed=seed if isinstance(seed, int) else None)
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if options:
            raise ValueError(
                f"options: the vector env takes only 'reset_mask', found {sorted(options)}"
            )
        if mask is None:
            mask = np.ones(self.num_envs, dtype=bool)
        else:
            mask = np.asarray(mask)
            if mask.dtype != np.bool_ or mask.shape != (self.num_envs,):
                raise ValueError(
                    f"options['reset_mask']: expected a bool array of shape ({self.num_envs},), "
                    f"found dtype {mask.dtype} shape {mask.shape}"
                )
            if not self._started and not mask.all():
                raise ValueError("options['reset_mask']: the first reset must reset every env")
        if seed is None:
            seeds = [None] * self.num_envs
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"seed: expected {self.num_envs} seeds, found {len(seeds)}")
        current = self._buf["seed"]
        resolved = []
        for i in range(self.num_envs):
            if not mask[i]:
                resolved.append(None)
            elif seeds[i] is not None:
                resolved.append(int(seeds[i]) % 2**64)
            elif self._seeded[i]:
                resolved.append(_hjepa.next_seed(int(current[i])))
            else:
                resolved.append(int(self.np_random.integers(0, 2**63)))
        self._core.reset(resolved)
        self._seeded |= mask
        self._started = True
        cost_mask = np.zeros(self.num_envs, dtype=bool)
        return self._observations(), self._infos(cost_mask)

    def step(self, actions):
        self._check_open()
        if not self._started:
            raise gym.error.ResetNeeded("Cannot call step() before calling reset()")
        was_reset = self._core.autoreset_mask
        self._core.step(actions)
        b = self._buf
        out = (b["rewards"], b["terminated"], b["truncated"])
        if self.copy:
            out = tuple(a.copy() for a in out)
        return (self._observations(), *out, self._infos(~was_reset))

    def render(self):
        self._check_open()
        if not can_render(self.render_mode):
            return None
        return tuple(self._core.render(i) for i in range(self.num_envs))

    def close_extras(self, **kwargs):
        self._core = None

    def get_state(self, i: int) -> bytes:
        """Sub-env i's state as bytes (`HjepaEnv.get_state`'s format)."""
        self._check_open()
        return self._core.get_state(int(i))

    def set_state(self, i: int, state: bytes) -> None:
        """Restores sub-env i (its rows of the arrays are rewritten, its pending autoreset
        dropped)."""
        self._check_open()
        self._core.set_state(int(i), bytes(state))

    @property
    def threads(self) -> int:
        return self._core.threads

    def _observations(self) -> dict:
        b = self._buf
        keys = ("observation", "achieved_goal", "desired_goal")
        if self.copy:
            return {k: b[k].copy() for k in keys}
        return {k: b[k] for k in keys}

    def _infos(self, cost_mask: np.ndarray) -> dict:
        b = self._buf
        info = {}
        for k in INFO_KEYS:
            info[k] = b[k].copy() if self.copy else b[k]
            info["_" + k] = np.ones(self.num_envs, dtype=bool)
        info["_cost"] = np.asarray(cost_mask, dtype=bool)
        return info

    def _check_open(self):
        if self.closed or self._core is None:
            raise gym.error.ClosedEnvironmentError("the vector env is closed")


def make_vec(
    scene: str = "push_t",
    num_envs: int = 1,
    observation: str = "state",
    render_mode: str | None = None,
    **kwargs,
) -> HjepaVectorEnv:
    """The native vector env of any scene, through `gymnasium.make_vec`."""
    env_id, kwargs = registered(scene, kwargs)
    return gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        observation=observation,
        render_mode=render_mode,
        **kwargs,
    )
