"""`hjepa.collect` writes what `hjepa collect` writes, byte for byte."""

import hashlib
import json
import os
import signal
import threading
import time

import pytest
from conftest import run_cli

import hjepa


def files(folder):
    """Every file of a dataset folder and its SHA-256."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(
    "scene, policy, episodes, seed, shard_episodes",
    [("wall", "waypoint", 5, 3, 2), ("push_t", "near-body", 2, 0, 50), ("two_rooms", "smooth-walk", 3, 11, 1)],
)
def test_the_files_equal_the_clis(hjepa_bin, tmp_path, monkeypatch, scene, policy, episodes, seed, shard_episodes):
    # Both resolve the scene name from the same folder (here: the embedded copy).
    monkeypatch.chdir(tmp_path)
    run_cli(
        hjepa_bin, "collect", "--scene", scene, "--policy", policy, "--episodes", episodes,
        "--seed", seed, "--shard-episodes", shard_episodes, "--out", "cli", cwd=tmp_path,
    )
    s = hjepa.collect(scene, policy, episodes=episodes, out="py", seed=seed, shard_episodes=shard_episodes, threads=1)
    assert s["episodes_total"] == s["episodes_recorded"] == episodes
    cli, py = files(tmp_path / "cli"), files(tmp_path / "py")
    assert cli == py, "every file byte-identical to the CLI's"
    assert len(cli) == 1 + -(-episodes // shard_episodes)


def test_a_resumed_collection_equals_one_run(tmp_path):
    hjepa.collect("wall", "random", episodes=4, out=tmp_path / "once", seed=5, shard_episodes=2)
    hjepa.collect("wall", "random", episodes=2, out=tmp_path / "twice", seed=5, shard_episodes=2)
    s = hjepa.collect("wall", "random", episodes=4, out=tmp_path / "twice", seed=5, shard_episodes=2)
    assert s["episodes_recorded"] == 2 and s["shards_written"] == 1
    assert files(tmp_path / "once") == files(tmp_path / "twice")


def test_the_dataset_opens(tmp_path):
    hjepa.collect("two_rooms", "smooth_walk", episodes=2, out=tmp_path / "d", seed=2)
    ds = hjepa.Dataset(tmp_path / "d")
    m = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert len(ds) == 2 and m["policy"] == "smooth_walk" and m["seed"] == 2


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="policy: expected one of random, smooth-walk"):
        hjepa.collect("wall", "teleport", episodes=1, out=tmp_path / "d")
    with pytest.raises(ValueError, match="no_such_scene.ron"):
        hjepa.collect("scenes/no_such_scene.ron", "random", episodes=1, out=tmp_path / "d")
    with pytest.raises(ValueError, match="--episodes"):
        hjepa.collect("wall", "random", episodes=0, out=tmp_path / "d")
    with pytest.raises(ValueError, match=".ron path"):
        hjepa.collect(hjepa._hjepa.shipped_scene_text("wall"), "random", episodes=1, out=tmp_path / "d")
    with pytest.raises(ValueError, match="out"):
        hjepa.collect("wall", "random", episodes=1)
    hjepa.collect("wall", "random", episodes=1, out=tmp_path / "e", seed=1)
    with pytest.raises(ValueError, match="manifest.json: seed: the dataset was collected with seed = 1"):
        hjepa.collect("wall", "random", episodes=1, out=tmp_path / "e", seed=2)


def test_ctrl_c_stops_a_collection_that_then_resumes(tmp_path):
    # Many short episodes, two per shard: the whole collection takes seconds.
    args = dict(policy="smooth-walk", episodes=200, seed=7, shard_episodes=2, threads=2)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            hjepa.collect("two_rooms", out=tmp_path / "cut", **args)
        took = time.monotonic() - start
    finally:
        timer.cancel()
    assert took < 0.3 + 1.5, f"KeyboardInterrupt came {took - 0.3:.2f} s after Ctrl-C"
    listed = len(json.loads((tmp_path / "cut" / "manifest.json").read_text())["shards"])
    assert listed < 100, "the collection finished before Ctrl-C: nothing was interrupted"
    hjepa.Dataset(tmp_path / "cut").verify()  # what was written is a valid dataset
    s = hjepa.collect("two_rooms", out=tmp_path / "cut", **args)
    assert s["episodes_recorded"] == 200 - 2 * listed
    hjepa.collect("two_rooms", out=tmp_path / "clean", **args)
    assert files(tmp_path / "cut") == files(tmp_path / "clean"), "resumed equals uninterrupted"
