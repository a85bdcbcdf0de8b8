import signal

import gymnasium as gym
import numpy as np
import pytest

import hjepa

# The Ctrl-C tests send SIGINT to this process and expect KeyboardInterrupt, however pytest
# was started: a shell starts background jobs with SIGINT ignored, and Python keeps that.
signal.signal(signal.SIGINT, signal.default_int_handler)

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


@pytest.fixture(scope="session")
def push_t_data(tmp_path_factory):
    """A small Push-T dataset (images included) in two shards, written by `hjepa.collect`."""
    out = tmp_path_factory.mktemp("data") / "push_t"
    hjepa.collect("push_t", "near-body", episodes=3, out=out, seed=1, shard_episodes=2)
    return out


@pytest.fixture(scope="session")
def hjepa_bin():
    """The torch-free `hjepa` binary (`make test-no-torch` builds it; `make test-python`
    sets HJEPA_BIN and HJEPA_REQUIRE_BIN=1). Without it the CLI comparisons are skipped."""
    import os
    from pathlib import Path

    path = os.environ.get("HJEPA_BIN")
    if path and Path(path).is_file():
        return Path(path).resolve()
    if os.environ.get("HJEPA_REQUIRE_BIN") == "1":
        pytest.fail(f"HJEPA_BIN={path!r} is not a file, and HJEPA_REQUIRE_BIN=1")
    pytest.skip("set HJEPA_BIN to the hjepa binary to compare with the CLI")


def run_cli(binary, *args, cwd):
    """Runs the hjepa binary; its stdout (the run must succeed)."""
    import subprocess

    r = subprocess.run([str(binary), *map(str, args)], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, f"hjepa {' '.join(map(str, args))}: {r.stderr}"
    return r.stdout
