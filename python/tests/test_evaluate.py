"""`hjepa.evaluate` plays `hjepa eval`'s episodes: the random floor against the CLI episode
by episode, a Python policy's episodes replayed by the CLI, rows, summaries and bad input.

`hjepa eval` itself needs torch and an agent file; the torch-free binary plays the same
episodes with the same random policy in `hjepa record --policy random --episode i` (episode
i of `hjepa eval --seed`'s sequence) and `hjepa run --policy random` (the same seeds, in a
summary), and `hjepa replay` re-simulates any recording, starts from `--goals-from` windows
and `--max-steps` / `--success` included."""

import json
import re
import signal

import numpy as np
import pytest
from conftest import run_cli

import hjepa

EVAL_ROW_KEYS = {
    "index", "seed", "success", "steps", "final_goal_distance", "final_cost", "final_criteria",
    "distance_bin", "replans", "planning_s", "replan_ms",
}


def chase(obs, info):
    """A deterministic Push-T policy: the PD target at the agent's goal (normalized units)."""
    g = obs["desired_goal"][:2]
    return np.clip((g - 2.56) / 2.56, -1, 1).astype(np.float32)


def toward(obs, info):
    """A deterministic point-mass policy: velocity toward the goal."""
    return np.clip(3 * (obs["desired_goal"] - obs["achieved_goal"]), -1, 1).astype(np.float32)


@pytest.mark.parametrize("policy, scene, episodes", [
    ("random", "point_maze_u", 20), ("random", "wall", 12), ("random", "push_t", 4),
    ("oracle", "wall", 4), ("oracle", "push_t", 2), ("waypoint", "two_rooms", 6),
])
def test_scripted_policies_equal_hjepa_run(hjepa_bin, tmp_path, policy, scene, episodes):
    r = hjepa.evaluate(policy, scene, episodes=episodes, seed=7)
    out = run_cli(hjepa_bin, "run", "--scene", scene, "--policy", policy, "--episodes", episodes,
                  "--seed", 7, cwd=tmp_path)
    k, n = r["successes"], r["episodes"]
    lo, hi = r["success_ci95"]
    assert f"success {k}/{n} = {100 * k / n:.1f}% (95% CI {100 * lo:.1f}-{100 * hi:.1f}%)" in out
    mean_d = np.mean([np.float32(row["final_goal_distance"]) for row in r["rows"]])
    assert f"final agent-goal distance: mean {mean_d:.3f} m" in out
    steps = [row["steps"] for row in r["rows"] if row["success"]]
    if steps:
        assert f"steps to success: mean {np.mean(steps):.1f}" in out
    for name in {c["name"] for c in r["rows"][0]["final_criteria"]}:
        c = sum(1 for row in r["rows"] for cr in row["final_criteria"] if cr["name"] == name and cr["success"])
        assert f"criterion {name}: {c}/{n}" in out


@pytest.mark.parametrize("policy, scene, episodes", [
    ("random", "point_maze_u", 5), ("random", "push_t", 2), ("oracle", "push_t", 2),
])
def test_scripted_policies_equal_hjepa_record_episode_by_episode(hjepa_bin, tmp_path, policy, scene, episodes):
    r = hjepa.evaluate(policy, scene, episodes=episodes, seed=3, record=tmp_path / "py.json")
    ours = json.loads((tmp_path / "py.json").read_text())["episodes"]
    assert [row["index"] for row in r["rows"]] == list(range(episodes))
    for i in range(episodes):
        run_cli(hjepa_bin, "record", "--scene", scene, "--policy", policy, "--seed", 3, "--episode", i,
                "--size", 16, "--out", f"{i}.gif", "--recording", f"{i}.json", cwd=tmp_path)
        (cli,) = json.loads((tmp_path / f"{i}.json").read_text())["episodes"]
        assert cli == ours[i], f"episode {i}: seed, success, steps and every action"
        assert (r["rows"][i]["seed"], r["rows"][i]["success"], r["rows"][i]["steps"]) == (
            cli["seed"], cli["success"], cli["steps"])


def test_goal_windows_and_overrides_replay_in_the_cli(hjepa_bin, tmp_path, push_t_data):
    """Dataset goals (`--goals-from`), `--max-steps` and `--success`: the CLI replays what
    Python played, the random floor and a Python policy alike, with the same outcomes."""
    for policy, name in (("random", "random"), (chase, "chase")):
        rec = tmp_path / f"{name}.json"
        r = hjepa.evaluate(policy, "push_t", episodes=4, seed=2, goals_from=push_t_data, max_steps=40,
                           success="tee_pose", record=rec)
        rows = r["rows"]
        assert all(row["goal_window"]["episode"] in (0, 1, 2) for row in rows)
        assert all(row["final_criteria"][0]["name"] == "tee_pose" for row in rows), "--success first"
        assert all(row["steps"] <= 40 for row in rows)
        if policy == "random":
            assert all(row["steps"] == 40 and not row["success"] for row in rows)
        out = run_cli(hjepa_bin, "replay", rec, cwd=tmp_path)
        assert "4 episodes replayed" in out and "4/4 identical to the recording" in out, out
        saved = json.loads(rec.read_text())
        assert saved["overrides"] == {"max_steps": 40, "success": "tee_pose"}, "replayed as played"
        starts = [e["start"] for e in saved["episodes"]]
        assert all(s is not None for s in starts), "the windows' layouts are recorded"
    # The same windows for any policy: the pairs depend on the dataset, seed, count and the
    # criterion (a window whose start already succeeds is skipped), not on who acts.
    again = hjepa.evaluate("random", "push_t", 4, 2, push_t_data, 40, "tee_pose")["rows"]
    assert [row["goal_window"] for row in rows] == [row["goal_window"] for row in again]


def test_a_python_policy_replays_in_the_cli(hjepa_bin, tmp_path):
    r = hjepa.evaluate(toward, "point_maze_u", episodes=6, seed=1, record=tmp_path / "r.json")
    assert 0 < r["successes"] < 6
    out = run_cli(hjepa_bin, "replay", tmp_path / "r.json", cwd=tmp_path)
    assert f"6 episodes replayed, {r['successes']} successful, 6/6 identical" in out


@pytest.mark.parametrize("observation", ["state", "pixels"])
def test_the_policy_sees_what_the_env_gives(observation):
    seen = []

    def policy(obs, info):
        seen.append((obs, info))
        return chase(obs, info)

    r = hjepa.evaluate(policy, "push_t", episodes=2, seed=4, max_steps=25, observation=observation)
    env = hjepa.make_env("push_t", observation=observation).unwrapped
    k = 0
    for row in r["rows"]:
        obs, info = env.reset(seed=row["seed"])
        goal = env.goal_observation()
        for t in range(row["steps"] // env.scene_spec["frameskip"]):
            got, got_info = seen[k]
            assert hjepa_same(got, obs), (row["index"], t)
            assert got_info["episode"] == row["index"] and got_info["seed"] == row["seed"]
            assert hjepa_same(got_info["goal_observation"], goal)
            assert hjepa_same(got_info["state"], info["state"]) and got_info["steps"] == info["steps"]
            obs, _, term, trunc, info = env.step(chase(obs, info))
            k += 1
        assert info["success"] == row["success"] and np.float32(info["distance"]) == np.float32(
            row["final_goal_distance"])
    assert k == len(seen)


def hjepa_same(a, b):
    from conftest import same

    return same(a, b)


def test_rows_go_to_the_results_file(tmp_path):
    r = hjepa.evaluate("random", "wall", episodes=3, seed=0, out=tmp_path / "res" / "eval.jsonl")
    lines = (tmp_path / "res" / "eval.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == r["rows"]
    assert set(r["rows"][0]) == EVAL_ROW_KEYS
    assert r["results"] == str(tmp_path / "res" / "eval.jsonl")
    assert r["success_ci95"] == hjepa._hjepa.wilson_interval(r["successes"], 3)


def test_the_summary():
    rows = [{"success": s, "steps": n, "planning_s": 0.5} for s, n in [(1, 10), (0, 50), (1, 30), (1, 20)]]
    s = hjepa.evaluation.summarise(rows)
    assert (s["episodes"], s["successes"], s["success_rate"]) == (4, 3, 0.75)
    assert s["median_steps_to_success"] == 20.0 and s["planning_s_per_episode"] == 0.5
    lo, hi = s["success_ci95"]
    assert round(lo, 3) == 0.301 and round(hi, 3) == 0.954
    two = hjepa.evaluation.summarise(rows[:1] + rows[2:3])
    assert two["median_steps_to_success"] == 30.0, "nearest rank, half up, as hjepa eval"


def test_reset_is_called_at_each_episode():
    class Policy:
        def __init__(self):
            self.resets, self.calls = [], 0

        def reset(self, obs, info):
            self.resets.append((info["episode"], info["seed"], info["steps"]))

        def __call__(self, obs, info):
            self.calls += 1
            return np.zeros(2, np.float32)

    p = Policy()
    r = hjepa.evaluate(p, "wall", episodes=3, seed=9, max_steps=10)
    assert p.resets == [(row["index"], row["seed"], 0) for row in r["rows"]]
    assert p.calls == sum(row["steps"] // 5 for row in r["rows"]) == 6
    assert all(row["replans"] == 2 and len(row["replan_ms"]) == 2 for row in r["rows"])


def test_a_bad_action_names_the_shape():
    with pytest.raises(ValueError, match=r"shape \(2,\).*found shape \(3,\)"):
        hjepa.evaluate(lambda o, i: np.zeros(3), "wall", episodes=1)
    with pytest.raises(ValueError, match="finite"):
        hjepa.evaluate(lambda o, i: np.array([np.nan, 0.0]), "wall", episodes=1)
    with pytest.raises(ValueError, match="dtype"):
        hjepa.evaluate(lambda o, i: np.array(["a", "b"]), "wall", episodes=1)


def test_the_policys_exception_comes_back(tmp_path):
    def policy(obs, info):
        if info["episode"] == 1:
            raise RuntimeError("planner diverged")
        return np.zeros(2, np.float32)

    with pytest.raises(RuntimeError, match="planner diverged"):
        hjepa.evaluate(policy, "wall", episodes=3, out=tmp_path / "e.jsonl")
    assert len((tmp_path / "e.jsonl").read_text().splitlines()) == 1, "finished episodes are kept"


def test_ctrl_c_interrupts():
    def policy(obs, info):
        if info["steps"] == 10:
            signal.raise_signal(signal.SIGINT)
        return np.zeros(2, np.float32)

    with pytest.raises(KeyboardInterrupt):
        hjepa.evaluate(policy, "wall", episodes=2)
    assert hjepa.evaluate("random", "wall", episodes=1)["episodes"] == 1, "the interpreter goes on"


def test_bad_arguments(push_t_data):
    with pytest.raises(ValueError, match="expected one of random, smooth-walk, waypoint, near-body, oracle"):
        hjepa.evaluate("nope", "wall", episodes=1)
    with pytest.raises(ValueError, match="scripted policy's name .* or a callable"):
        hjepa.evaluate(3, "wall", episodes=1)
    with pytest.raises(ValueError, match="noise: expected a heading noise"):
        hjepa.evaluate("waypoint", "wall", episodes=1, noise=float("nan"))
    with pytest.raises(ValueError, match="episode_steps: --max-steps"):
        hjepa.evaluate("random", "wall", episodes=1, max_steps=0)
    with pytest.raises(ValueError, match=re.escape("goal.success: --success nope: no such criterion")):
        hjepa.evaluate("random", "wall", episodes=1, success="nope")
    with pytest.raises(ValueError, match="manifest.json: scene: recorded on scene `push_t`"):
        hjepa.evaluate("random", "wall", episodes=1, goals_from=push_t_data)
    with pytest.raises(ValueError, match="goal offset"):
        hjepa.evaluate("random", "push_t", episodes=1, goals_from=push_t_data, goal_offset=7)
    with pytest.raises(ValueError, match="observation"):
        hjepa.evaluate(chase, "wall", episodes=1, observation="depth")
    with pytest.raises(ValueError, match="no_such.ron"):
        hjepa.evaluate("random", "scenes/no_such.ron", episodes=1)
