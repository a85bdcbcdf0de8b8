import json
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import hjepa
from conftest import MODES, SCENES, actions, same, short_scene


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scene", SCENES)
def test_check_env_passes_without_warnings(scene, mode):
    env = gym.make(hjepa.scene_id(scene), observation=mode, render_mode="rgb_array")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []
    env.close()


def test_every_shipped_scene_is_registered_and_push_t_has_its_id():
    ids = {i for i in gym.envs.registry if i.startswith("hjepa/")}
    assert "hjepa/PushT-v0" in ids
    assert {hjepa.scene_id(s) for s in SCENES} <= ids
    assert len(SCENES) == 6


@pytest.mark.parametrize("mode", MODES)
def test_spaces_come_from_the_scene(mode):
    env = gym.make("hjepa/PushT-v0", observation=mode).unwrapped
    spec = env.scene_spec
    assert spec["scene_action_low"] == [0.0, 0.0]
    assert spec["scene_action_high"] == pytest.approx([5.12, 5.12])
    assert env.action_space.shape == (2,)
    obs = env.observation_space["observation"]
    if mode == "pixels":
        assert obs.shape == (96, 96, 3) and obs.dtype == np.uint8
    else:
        assert obs.shape == (7,) and obs.dtype == np.float32
    # The agent (a criterion places it) and the tee's pose.
    assert env.observation_space["desired_goal"].shape == (5,)
    scene_env = gym.make("hjepa/PushT-v0", action_units="scene").unwrapped
    assert list(scene_env.action_space.low) == [0.0, 0.0]
    assert np.allclose(scene_env.action_space.high, [5.12, 5.12])


def test_normalized_actions_map_onto_the_scene_box(push_t):
    assert np.allclose(push_t.to_scene_action(np.array([-1, 1], np.float32)), [0.0, 5.12])
    a = np.array([0.25, -0.5], np.float32)
    assert np.allclose(push_t.from_scene_action(push_t.to_scene_action(a)), a)
    # The same move in both units gives the same trajectory.
    scene_env = gym.make("hjepa/PushT-v0", action_units="scene").unwrapped
    push_t.reset(seed=4)
    scene_env.reset(seed=4)
    for a in actions(push_t.action_space, 5, 0):
        o1 = push_t.step(a)[0]
        o2 = scene_env.step(push_t.to_scene_action(a))[0]
        assert same(o1, o2)


@pytest.mark.parametrize("mode", MODES)
def test_reset_with_a_seed_is_reproducible(mode):
    env = gym.make("hjepa/PushT-v0", observation=mode).unwrapped
    acts = actions(env.action_space, 8, 1)

    def run(seed):
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for a in acts:
            out.append(env.step(a)[0])
        return out

    a, b, c = run(11), run(11), run(12)
    assert all(same(x, y) for x, y in zip(a, b))
    assert not same(a[0], c[0])


def test_unseeded_resets_follow_the_seed_chain(push_t):
    push_t.reset(seed=7)
    obs, info = push_t.reset()
    assert info["seed"] == hjepa.next_seed(7)
    again, _ = push_t.reset(seed=hjepa.next_seed(7))
    assert same(obs, again)


def test_options_fix_start_and_goal():
    env = gym.make("hjepa/TwoRooms-v0").unwrapped
    obs, _ = env.reset(seed=0, options={"agent_start": [0.7, 0.8], "agent_goal": [3.0, 1.0]})
    assert np.allclose(obs["achieved_goal"], [0.7, 0.8])
    assert np.allclose(obs["desired_goal"], [3.0, 1.0])
    assert env.layout()["agent_goal"] == pytest.approx([3.0, 1.0])
    # A whole layout, as layout() returns it, replays the episode.
    layout = env.sample_layout(5)
    a, _ = env.reset(seed=0, options={"layout": layout})
    b, _ = env.reset(seed=5)
    assert same(a, b)
    with pytest.raises(ValueError, match="unknown key"):
        env.reset(seed=0, options={"start": [1, 1]})
    with pytest.raises(ValueError, match="body_starts: expected 0"):
        env.reset(seed=0, options={"body_starts": [[1, 1, 0]]})


def test_terminated_on_success_with_info():
    env = gym.make("hjepa/TwoRooms-v0").unwrapped
    goal = env.sample_layout(3)["agent_goal"]
    env.reset(seed=3, options={"agent_start": goal})
    obs, reward, terminated, truncated, info = env.step(np.zeros(2, np.float32))
    assert terminated and not truncated
    assert info["success"] and info["distance"] < 0.45
    assert info["criteria"]["agent_reach"]["success"]
    assert reward == pytest.approx(-info["cost"])
    assert info["state"].shape == (len(env.scene_spec["physical_state_names"]),)


def test_truncated_at_the_scene_episode_length():
    env = gym.make("hjepa/Scene-v0", scene=short_scene(steps=6)).unwrapped
    env.reset(seed=0)
    flags = [env.step(np.zeros(2, np.float32))[2:4] for _ in range(6)]
    assert flags[-1] == (False, True)
    assert all(f == (False, False) for f in flags[:-1])
    assert env.max_episode_steps == 6


def test_push_t_truncates_after_its_env_steps():
    env = gym.make("hjepa/PushT-v0").unwrapped
    env.reset(seed=0)
    assert env.max_episode_steps == 60  # 300 control steps, frameskip 5
    for t in range(60):
        _, _, terminated, truncated, _ = env.step(np.zeros(2, np.float32))
        if terminated:
            pytest.skip("a seed whose start already succeeds")
    assert truncated


@pytest.mark.parametrize("mode", MODES)
def test_render_returns_an_rgb_array(mode):
    env = gym.make("hjepa/PushT-v0", observation=mode, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8
    assert frame.std() > 0
    if mode == "pixels":
        assert same(frame, obs["observation"])
    else:
        pixels = gym.make("hjepa/PushT-v0", observation="pixels").unwrapped
        assert same(frame, pixels.reset(seed=0)[0]["observation"])


def test_make_env_takes_a_name_a_path_or_ron_text(tmp_path):
    text = hjepa._hjepa.shipped_scene_text("wall")
    path = tmp_path / "my_wall.ron"
    path.write_text(text)
    envs = [hjepa.make_env(scene=s) for s in ("wall", str(path), text)]
    first = [e.reset(seed=2)[0] for e in envs]
    assert all(same(first[0], o) for o in first[1:])
    assert envs[0].spec.id == "hjepa/Wall-v0" and envs[1].spec.id == "hjepa/Scene-v0"
    assert envs[0].render().shape == (64, 64, 3)


def test_factors_of_variation_are_drawn_from_the_seed_and_reported_in_info():
    text = hjepa._hjepa.shipped_scene_text("wall").replace(
        "    observation: ObservationSpec(",
        '    factors: {"background": Set([(0, 0, 0), (200, 30, 30)]), "agent.size": Range(1.0, 2.0)},\n'
        "    observation: ObservationSpec(",
        1,
    )
    env = hjepa.make_env(scene=text)
    plain = hjepa.make_env(scene="wall")
    seen = set()
    for seed in range(8):
        obs, info = env.reset(seed=seed)
        _, again = env.reset(seed=seed)
        assert info["factors"] == again["factors"]
        assert 1.0 <= info["factors"]["agent.size"] <= 2.0
        background = info["factors"]["background"]
        seen.add(background)
        # The corner pixel is the drawn background; the plain scene has none of this.
        assert tuple(env.render()[0, 0]) == background
        _, plain_info = plain.reset(seed=seed)
        assert "factors" not in plain_info
    assert seen == {(0, 0, 0), (200, 30, 30)}


def test_bad_scene_is_a_value_error_with_file_and_line(tmp_path):
    text = hjepa._hjepa.shipped_scene_text("wall").replace("episode_steps:", "episode_stepz:")
    with pytest.raises(ValueError, match=r"<string>: line \d+, column \d+"):
        hjepa.make_env(scene=text)
    bad = tmp_path / "bad.ron"
    bad.write_text(hjepa._hjepa.shipped_scene_text("wall").replace("dt: 0.02", "dt: -0.02"))
    with pytest.raises(ValueError, match="bad.ron: physics"):
        hjepa.make_env(scene=str(bad))
    with pytest.raises(ValueError, match="cannot read scene file"):
        hjepa.make_env(scene="no_such_scene")


@pytest.mark.parametrize(
    "action, found",
    [
        (np.zeros(3, np.float32), r"found shape \(3,\)"),
        (np.zeros((1, 2), np.float32), r"found shape \(1, 2\)"),
        (np.array(["a", "b"]), "found dtype <U1"),
        (np.array([np.nan, 0.0]), "finite"),
        (np.array([0.0, np.inf], np.float32), "finite"),
    ],
)
def test_bad_actions_are_value_errors_naming_the_shape(push_t, action, found):
    push_t.reset(seed=0)
    with pytest.raises(ValueError, match=found) as e:
        push_t.step(action)
    assert "shape (2,)" in str(e.value)
    # Nothing reached the physics.
    assert push_t.observe()[1]["steps"] == 0


def test_lists_and_float64_actions_are_accepted(push_t):
    push_t.reset(seed=0)
    a = push_t.step([0.1, 0.2])[0]
    push_t.reset(seed=0)
    b = push_t.step(np.array([0.1, 0.2], np.float32))[0]
    assert same(a, b)


def test_rejecting_scene_refuses_out_of_range_actions():
    text = hjepa._hjepa.shipped_scene_text("two_rooms").replace(
        "out_of_range: Clip", "out_of_range: Reject"
    )
    env = gym.make("hjepa/Scene-v0", scene=text, action_units="scene").unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="Reject"):
        env.step(np.array([1.0, 0.0], np.float32))


def test_step_before_reset_and_after_close_are_clear_errors():
    env = gym.make("hjepa/PushT-v0").unwrapped
    with pytest.raises(gym.error.ResetNeeded, match="before calling env.reset"):
        env.step(np.zeros(2, np.float32))
    raw = hjepa._hjepa.Env("push_t")
    with pytest.raises(RuntimeError, match="before reset"):
        raw.step(np.zeros(2, np.float32))
    env.reset(seed=0)
    env.close()
    with pytest.raises(gym.error.ClosedEnvironmentError):
        env.step(np.zeros(2, np.float32))
    env.close()  # closing twice is fine


def test_a_rust_panic_becomes_a_runtime_error_and_the_interpreter_survives():
    for _ in range(2):
        with pytest.raises(RuntimeError, match="deliberate test panic"):
            hjepa._hjepa._panic_for_test()
    env = gym.make("hjepa/PushT-v0")
    env.reset(seed=0)
    env.step(np.zeros(2, np.float32))


def test_goal_observation_has_the_observation_shape():
    for mode in MODES:
        env = gym.make("hjepa/PushT-v0", observation=mode).unwrapped
        obs, _ = env.reset(seed=0)
        goal = env.goal_observation()
        assert goal.shape == obs["observation"].shape and goal.dtype == obs["observation"].dtype


def test_layout_is_json_round_trippable(push_t):
    push_t.reset(seed=9)
    layout = push_t.layout()
    assert json.loads(json.dumps(layout)) == layout
    assert set(layout) == {"doors", "agent_start", "agent_goal", "body_starts", "body_goals", "distance_bin"}


def test_the_extension_does_not_link_libtorch():
    path = hjepa._hjepa.__file__
    data = open(path, "rb").read()
    assert b"libtorch" not in data and b"libc10" not in data
