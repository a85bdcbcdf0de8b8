"""`evaluate`: hjepa's evaluation protocol for any policy written in Python."""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from . import _hjepa

#: `hjepa eval --goal-offset`'s default: DINO-WM's 25 control steps.
DEFAULT_GOAL_OFFSET = 25


def evaluate(
    policy: str | Callable[[dict, dict], Any],
    scene: str,
    episodes: int = 100,
    seed: int = 0,
    goals_from: str | os.PathLike | None = None,
    max_steps: int | None = None,
    success: str | None = None,
    out: str | os.PathLike | None = None,
    *,
    goal_offset: int = DEFAULT_GOAL_OFFSET,
    record: str | os.PathLike | None = None,
    observation: str = "state",
    action_units: str = "normalized",
    noise: float = 0.3,
) -> dict:
    """Plays the start/goal pairs `hjepa eval --scene SCENE --episodes N --seed S
    [--goals-from DATA --goal-offset K] [--max-steps T] [--success C]` plays, with `policy`
    acting, through hjepa's own episode loop, and summarises them as `hjepa eval` does.

    Episode i starts from the layout the scene draws for `episode_seed(seed, i)`, or with
    `goals_from` (a dataset folder of the same scene) from the window hjepa draws from it
    for episode i (start at a recorded frame, goal `goal_offset` control steps later);
    `max_steps` replaces the scene's episode length (control steps) and `success` names
    the criterion that decides success (default the scene's first).

    `policy`: the name of one of hjepa's scripted policies, which read the true state and
    run in Rust without the GIL: `"random"` (the random floor `hjepa eval --random-floor`
    reports), `"oracle"` (the oracle expert: CEM on a private copy of the simulator, as
    `hjepa run --policy oracle`; not `hjepa eval --oracle`, which plans with an agent
    file's planner and needs the torch build), `"waypoint"`, `"smooth-walk"` or
    `"near-body"` (heading noise `noise`, as `hjepa run --noise`); or a callable `policy(obs, info) -> action` that sees what
    `HjepaEnv` gives: `obs` the Dict observation (`observation`, `achieved_goal`,
    `desired_goal`; `observation="state"` or `"pixels"`), `info` the env's info plus
    `episode` (its index), `seed` and `goal_observation` (what is observed at the goal).
    Actions are in [-1, 1]^2 (`action_units="normalized"`) or the scene's units
    (`"scene"`). A policy with a `reset(obs, info)` method has it called at each episode's
    start. It runs with the GIL held; its time per call is reported as planning time.

    `out`: write the per-episode rows as JSON lines (the `EvalEpisode` rows of `hjepa
    eval`'s results file); `record`: save the episodes as a recording `hjepa replay` checks.

    Returns a dict: `episodes`, `successes`, `success_rate`, `success_ci95` (95 % Wilson
    interval), `median_steps_to_success`, `planning_s_per_episode`, `results` (the `out`
    path or None) and `rows` (every episode's row, in order). An exception from the policy,
    a bad action (ValueError naming the expected shape) or Ctrl-C stops the evaluation and
    is raised; the rows of the finished episodes are in `out` already.
    """
    rows = _hjepa.evaluate(
        policy,
        str(scene),
        int(episodes),
        int(seed),
        None if goals_from is None else os.fspath(goals_from),
        int(goal_offset),
        None if max_steps is None else int(max_steps),
        success,
        None if out is None else os.fspath(out),
        None if record is None else os.fspath(record),
        observation,
        action_units,
        float(noise),
    )
    return summarise(rows, None if out is None else os.fspath(out))


def summarise(rows: list[dict], results: str | None = None) -> dict:
    """`hjepa eval`'s figures of a list of episode rows."""
    n = len(rows)
    k = sum(1 for r in rows if r["success"])
    steps = sorted(r["steps"] for r in rows if r["success"])
    return {
        "episodes": n,
        "successes": k,
        "success_rate": k / max(n, 1),
        "success_ci95": _hjepa.wilson_interval(k, n),
        # The nearest-rank median, as `hjepa eval` reports it (half rounds up, as in Rust).
        "median_steps_to_success": float(steps[int((len(steps) - 1) * 0.5 + 0.5)]) if steps else None,
        "planning_s_per_episode": float(np.mean([r["planning_s"] for r in rows])) if rows else 0.0,
        "results": results,
        "rows": rows,
    }
