"""`HjepaEnv`: one hjepa sandbox as a goal-conditioned `gymnasium.Env`."""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from . import _hjepa

#: Keys of a layout that `reset(options=...)` may fix (see `HjepaEnv.reset`).
LAYOUT_KEYS = ("agent_start", "agent_goal", "body_starts", "body_goals", "doors", "distance_bin")

#: The Gymnasium id of every env takes this version.
VERSION = 0


def scene_id(name: str) -> str:
    """The Gymnasium id of a shipped scene: `push_t` -> `hjepa/PushT-v0`."""
    return "hjepa/" + "".join(p[:1].upper() + p[1:] for p in name.split("_")) + f"-v{VERSION}"


def _box(low, high) -> spaces.Box:
    return spaces.Box(
        low=np.asarray(low, dtype=np.float32),
        high=np.asarray(high, dtype=np.float32),
        dtype=np.float32,
    )


def spaces_of(spec: dict) -> tuple[spaces.Box, spaces.Dict]:
    """The action space and the Dict observation space a scene spec gives."""
    action = _box(spec["action_low"], spec["action_high"])
    if spec["observation"] == "pixels":
        obs = spaces.Box(0, 255, tuple(spec["image_shape"]), dtype=np.uint8)
    else:
        obs = _box(spec["state_low"], spec["state_high"])
    goal_low, goal_high = spec["goal_low"], spec["goal_high"]
    observation = spaces.Dict(
        {
            "observation": obs,
            "achieved_goal": _box(goal_low, goal_high),
            "desired_goal": _box(goal_low, goal_high),
        }
    )
    return action, observation


def check_arguments(scene: str | None, render_mode: str | None) -> None:
    """What the single and the vector env refuse before building anything."""
    if scene is None:
        raise ValueError("scene: required (a shipped name, a .ron path or RON text)")
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f'render_mode: expected None or "rgb_array", found {render_mode!r}')


def can_render(render_mode: str | None) -> bool:
    """Whether `render()` has a mode to render in; without one it warns, as Gymnasium's own
    envs do, and returns None."""
    if render_mode is None:
        gym.logger.warn(
            "You are calling render method without specifying any render mode; "
            'create the env with render_mode="rgb_array".'
        )
        return False
    return True


def _pose(p: Any) -> Any:
    """A pose given as [x, y, angle] or {"x", "y", "angle"}, as a layout's JSON holds it."""
    if p is None or isinstance(p, dict):
        return p
    x, y, a = (float(v) for v in p)
    return {"x": x, "y": y, "angle": a}


def layout_with(base: dict, options: dict | None) -> dict | None:
    """`base` (a seed's layout) with what `options` fixes, or None when it fixes nothing."""
    if not options:
        return None
    unknown = set(options) - set(LAYOUT_KEYS) - {"layout"}
    if unknown:
        raise ValueError(
            f"options: unknown key(s) {sorted(unknown)}; expected 'layout' or any of {list(LAYOUT_KEYS)}"
        )
    layout = dict(base)
    layout.update(options.get("layout") or {})
    layout.update({k: options[k] for k in LAYOUT_KEYS if k in options})
    for k in ("agent_start", "agent_goal"):
        layout[k] = [float(v) for v in layout[k]]
    layout["body_starts"] = [_pose(p) for p in layout["body_starts"]]
    layout["body_goals"] = [_pose(p) for p in layout["body_goals"]]
    layout["doors"] = [float(d) for d in layout["doors"]]
    return layout


class HjepaEnv(gym.Env):
    """One hjepa sandbox.

    Args:
        scene: a shipped scene's name (`"push_t"`), a path to a `.ron` scene file, or RON text.
        observation: `"state"` (the scene's state vector, float32) or `"pixels"` (the scene's
            RGB image, uint8 H x W x 3).
        render_mode: None or `"rgb_array"`.
        action_units: `"normalized"` (default): actions in [-1, 1]^2, mapped affinely onto
            the scene's action box (`center + a * half`); `"scene"`: the scene's own units
            and bounds (Push-T: a PD target in metres, [0, 5.12]^2).

    Observations are dicts, as goal-conditioned Gymnasium-Robotics envs give them:
    `observation`, `achieved_goal` (the goal-relevant part of the state: the agent's x, y
    where a criterion places the agent, then x, y, angle of each body a criterion names) and
    `desired_goal` (the same quantities at the goal). `reward` is minus the scene's cost;
    `terminated` on success (where the scene says so) or a blow-up, `truncated` at the
    scene's episode length. `info` has `success`, `distance` (agent to goal, m), every
    criterion, the full physical `state`, `steps` (control steps) and `seed`.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        scene: str | None = None,
        observation: str = "state",
        render_mode: str | None = None,
        action_units: str = "normalized",
    ):
        check_arguments(scene, render_mode)
        self._core = _hjepa.Env(scene, observation, action_units)
        self.scene_spec: dict = self._core.spec
        self.render_mode = render_mode
        self.metadata = {
            "render_modes": ["rgb_array"],
            "render_fps": 1.0 / self.scene_spec["env_dt"],
        }
        self.action_space, self.observation_space = spaces_of(self.scene_spec)
        #: Env steps before `truncated` (the scene's control steps over its frameskip).
        self.max_episode_steps: int = self.scene_spec["max_env_steps"]
        self._needs_reset = True
        self._seeded = False
        self._closed = False

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Starts an episode. The same `seed` gives the same episode, bit for bit (and the
        same layout `hjepa`'s CLI draws for that seed); with no seed, the next seed of the
        chain after the last episode's (`hjepa.next_seed`), or one drawn from `np_random`
        at the very first reset.

        `options` may fix the start and goal: any of `agent_start` ([x, y]), `agent_goal`,
        `body_starts` (one [x, y, angle] per body copy), `body_goals` (one per body, None
        where it has no goal), `doors`, or `layout` (a whole layout dict, as `layout()`
        returns); what is not given comes from the seed's layout.
        """
        super().reset(seed=seed)
        self._check_open()
        if seed is not None:
            rust_seed = int(seed) % 2**64
        elif self._seeded:
            rust_seed = _hjepa.next_seed(self._core.seed)
        else:
            rust_seed = int(self.np_random.integers(0, 2**63))
        self._seeded = True
        layout = None
        if options:
            layout = layout_with(json.loads(self._core.sample_layout(rust_seed)), options)
        obs, info = self._core.reset(rust_seed, None if layout is None else json.dumps(layout))
        self._needs_reset = False
        return obs, info

    def step(self, action):
        self._check_open()
        if self._needs_reset:
            raise gym.error.ResetNeeded(
                "Cannot call env.step() before calling env.reset() (or after a failed set_state)"
            )
        return self._core.step(action)

    def render(self):
        self._check_open()
        return self._core.render() if can_render(self.render_mode) else None

    def close(self):
        self._closed = True

    # ---- beyond Gymnasium ----

    def get_state(self) -> bytes:
        """The complete state as picklable bytes: `set_state` on any env of the same scene,
        in this process or another, continues bit-identically."""
        self._check_open()
        if self._needs_reset:
            raise gym.error.ResetNeeded("Cannot call env.get_state() before calling env.reset()")
        return self._core.get_state()

    def set_state(self, state: bytes) -> None:
        self._check_open()
        self._needs_reset = True
        self._core.set_state(bytes(state))
        self._needs_reset = False
        self._seeded = True

    def observe(self):
        """The current (observation, info), without stepping."""
        self._check_open()
        return self._core.observe()

    def goal_observation(self) -> np.ndarray:
        """What the agent would observe with the goal reached (state vector or image)."""
        return self._core.goal_observation()

    def layout(self) -> dict:
        """This episode's layout (start and goal poses, doors)."""
        return json.loads(self._core.layout())

    def sample_layout(self, seed: int) -> dict:
        """The layout `reset(seed=seed)` would use."""
        return json.loads(self._core.sample_layout(int(seed)))

    def to_scene_action(self, action) -> np.ndarray:
        """The action in the scene's units (what `hjepa`'s datasets and CLI use)."""
        return self._core.to_scene_action(action)

    def from_scene_action(self, scene_action) -> np.ndarray:
        """The inverse of `to_scene_action`."""
        a = np.asarray(scene_action, dtype=np.float32)
        if not self.scene_spec["normalized_actions"]:
            return a.copy()
        c = np.asarray(self.scene_spec["action_center"], dtype=np.float32)
        h = np.asarray(self.scene_spec["action_half"], dtype=np.float32)
        return (a - c) / h

    @property
    def seed_of_episode(self) -> int:
        """The seed this episode's layout was drawn from."""
        return self._core.seed

    def _check_open(self):
        if self._closed:
            raise gym.error.ClosedEnvironmentError("the env is closed")


def make_env(
    scene: str = "push_t",
    observation: str = "state",
    render_mode: str | None = "rgb_array",
    **kwargs,
) -> gym.Env:
    """A Gymnasium env of any scene: a shipped name gets its registered id, a path or RON
    text goes through `hjepa/Scene-v0`; either way through `gymnasium.make` (so it has a
    spec and Gymnasium's standard wrappers)."""
    env_id, kwargs = registered(scene, kwargs)
    return gym.make(env_id, observation=observation, render_mode=render_mode, **kwargs)


def registered(scene: str, kwargs: dict) -> tuple[str, dict]:
    """The Gymnasium id that makes `scene` and the arguments it then takes: a shipped scene's
    own id, else `hjepa/Scene-v0` with `scene=`."""
    if scene in _hjepa.shipped_scenes():
        return scene_id(scene), kwargs
    return f"hjepa/Scene-v{VERSION}", {**kwargs, "scene": scene}


def register_envs() -> None:
    """Registers `hjepa/<Scene>-v0` for every shipped scene and `hjepa/Scene-v0`."""
    ids = [(scene_id(n), {"scene": n}) for n in _hjepa.shipped_scenes()]
    ids.append((f"hjepa/Scene-v{VERSION}", {}))
    for env_id, kwargs in ids:
        if env_id in gym.envs.registry:
            continue
        gym.register(
            id=env_id,
            entry_point="hjepa.envs:HjepaEnv",
            vector_entry_point="hjepa.vector:HjepaVectorEnv",
            nondeterministic=False,
            kwargs=kwargs,
        )
