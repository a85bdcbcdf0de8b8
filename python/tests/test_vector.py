import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, VectorEnv

import hjepa
from conftest import MODES, same, short_scene


def make_vec(num_envs, **kw):
    return gym.make_vec("hjepa/Scene-v0", num_envs=num_envs, vectorization_mode="vector_entry_point", **kw)


def test_make_vec_returns_the_native_vector_env():
    envs = gym.make_vec("hjepa/PushT-v0", num_envs=3, vectorization_mode="vector_entry_point")
    assert isinstance(envs, hjepa.HjepaVectorEnv) and isinstance(envs, VectorEnv)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, info = envs.reset(seed=0)
    assert obs in envs.observation_space
    assert obs["observation"].shape == (3, 7)
    assert list(info["seed"]) == [0, 1, 2]
    envs.close()


@pytest.mark.parametrize("mode", MODES)
def test_sub_envs_equal_single_envs_across_autoresets(mode):
    """N sub-envs stepped together equal N single envs reset with the same seeds, each reset
    without a seed when its episode ends (next-step autoreset: that step ignores the action)."""
    scene = short_scene(steps=5)
    n, steps = 3, 14
    envs = make_vec(n, scene=scene, observation=mode, threads=2)
    singles = [gym.make("hjepa/Scene-v0", scene=scene, observation=mode).unwrapped for _ in range(n)]
    rng = np.random.default_rng(0)
    acts = rng.uniform(-1, 1, size=(steps, n, 2)).astype(np.float32)

    vobs, _ = envs.reset(seed=40)
    sobs = [e.reset(seed=40 + i)[0] for i, e in enumerate(singles)]
    done = [False] * n
    autoresets = 0
    for t in range(steps):
        vobs, vrew, vterm, vtrunc, vinfo = envs.step(acts[t])
        for i, e in enumerate(singles):
            if done[i]:
                o, info = e.reset()
                r, te, tr = 0.0, False, False
                assert not vinfo["_cost"][i]
                autoresets += 1
            else:
                o, r, te, tr, info = e.step(acts[t, i])
            done[i] = te or tr
            for k in o:
                assert same(vobs[k][i], o[k]), (t, i, k)
            assert (vrew[i], vterm[i], vtrunc[i]) == (r, te, tr)
            assert same(vinfo["state"][i], info["state"])
            assert vinfo["seed"][i] == info["seed"]
    assert autoresets >= n  # every sub-env went through an autoreset


def test_results_do_not_depend_on_the_thread_count():
    runs = []
    for threads in (1, 3):
        envs = gym.make_vec(
            "hjepa/PushT-v0", num_envs=5, vectorization_mode="vector_entry_point", threads=threads
        )
        assert envs.unwrapped.threads == threads
        envs.reset(seed=3)
        rng = np.random.default_rng(1)
        out = [envs.step(rng.uniform(-1, 1, (5, 2)).astype(np.float32))[0] for _ in range(4)]
        runs.append(out)
    assert all(same(a, b) for a, b in zip(*runs))


def test_observations_are_copies_unless_asked():
    envs = gym.make_vec("hjepa/PushT-v0", num_envs=2, vectorization_mode="vector_entry_point")
    o1, _ = envs.reset(seed=0)
    o2 = envs.step(np.zeros((2, 2), np.float32))[0]
    assert not np.shares_memory(o1["observation"], o2["observation"])
    raw = gym.make_vec(
        "hjepa/PushT-v0", num_envs=2, vectorization_mode="vector_entry_point", copy=False
    )
    r1, _ = raw.reset(seed=0)
    r2 = raw.step(np.zeros((2, 2), np.float32))[0]
    assert r1["observation"] is r2["observation"]  # the preallocated array, written in place


def test_reset_mask_resets_only_the_marked_envs():
    envs = gym.make_vec("hjepa/PushT-v0", num_envs=3, vectorization_mode="vector_entry_point")
    envs.reset(seed=0)
    moved = envs.step(np.full((3, 2), 0.5, np.float32))[0]
    obs, info = envs.reset(seed=10, options={"reset_mask": np.array([False, True, False])})
    assert same(obs["observation"][0], moved["observation"][0])
    assert not same(obs["observation"][1], moved["observation"][1])
    assert list(info["seed"]) == [0, 11, 2]


def test_bad_actions_are_value_errors_naming_the_shape():
    envs = gym.make_vec("hjepa/PushT-v0", num_envs=4, vectorization_mode="vector_entry_point")
    with pytest.raises(gym.error.ResetNeeded):
        envs.step(np.zeros((4, 2), np.float32))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(4, 2\).*found shape \(4,\)"):
        envs.step(np.zeros(4, np.float32))
    bad = np.zeros((4, 2), np.float32)
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"actions\[2\].*finite.*shape \(4, 2\)"):
        envs.step(bad)
    with pytest.raises(ValueError, match="dtype"):
        envs.step(np.full((4, 2), "x"))
    envs.close()
    with pytest.raises(gym.error.ClosedEnvironmentError):
        envs.step(np.zeros((4, 2), np.float32))


def test_vector_snapshots_restore_a_sub_env():
    envs = gym.make_vec("hjepa/PushT-v0", num_envs=2, vectorization_mode="vector_entry_point")
    envs.reset(seed=0)
    state = envs.unwrapped.get_state(1)
    a = np.full((2, 2), 0.3, np.float32)
    first = envs.step(a)[0]
    envs.unwrapped.set_state(1, state)
    again = envs.step(a)[0]
    assert same(first["observation"][1], again["observation"][1])
    single = gym.make("hjepa/PushT-v0").unwrapped
    single.set_state(state)
    assert same(single.step(a[1])[0]["observation"], first["observation"][1])


def test_render_gives_one_frame_per_env():
    envs = gym.make_vec(
        "hjepa/Wall-v0", num_envs=2, vectorization_mode="vector_entry_point", render_mode="rgb_array"
    )
    envs.reset(seed=0)
    frames = envs.render()
    assert len(frames) == 2 and frames[0].shape == (64, 64, 3)
