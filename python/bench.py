"""Speed of hjepa's Python envs, side by side with gym-pusht and `hjepa bench sim`.

    python python/bench.py [--seconds 2] [--rounds 3] [--hjepa PATH]

Measured in one run, in this order each round (so both sides of every ratio see the same
machine): one hjepa push_t env stepped from Python and one gym-pusht 0.1.8
`gym_pusht/PushT-v0` env (state observations, then 96x96 RGB pixels), then hjepa's native
vector env (8 envs per core, as `hjepa bench sim`'s vector rows) and `hjepa bench sim`
itself (a subprocess; its own gym-pusht peer is switched off so that it does not run
twice). Every row is the median of the rounds. Both envs go through `gymnasium.make` (with
its standard wrappers) and take uniform random actions drawn beforehand; episode resets are
part of the cost. hjepa's push_t steps one 10 Hz control step per env step here, as
gym-pusht's `step` does (the shipped scene plans at frameskip 5). Memory per env is the
resident memory added by 100 envs after a reset and a step, each kind in a fresh interpreter.

gym-pusht is imported from this interpreter (`pip install gym-pusht==0.1.8`); when it is
missing the peer rows say so. The `hjepa` binary is --hjepa, $HJEPA_BIN,
$CARGO_TARGET_DIR/release/hjepa, target/release/hjepa or `hjepa` on PATH.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import hjepa

ROOT = Path(__file__).resolve().parent.parent
PUSHT_ID = "gym_pusht/PushT-v0"


def push_t_one_control_step() -> str:
    """push_t's RON text at frameskip 1: one env step = one 10 Hz control step (gym-pusht's)."""
    ron = (ROOT / "scenes" / "push_t.ron").read_text()
    ron, n = re.subn(r"frameskip:\s*5", "frameskip: 1", ron)
    assert n == 1, "scenes/push_t.ron: expected one `frameskip: 5`"
    return ron


def gym_pusht_version() -> str | None:
    try:
        import gym_pusht  # noqa: F401  (registers gym_pusht/PushT-v0)
        from importlib.metadata import version

        return version("gym-pusht")
    except Exception:
        return None


def random_actions(space, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low, high = space.low, space.high
    return rng.uniform(low, high, size=(n,) + low.shape).astype(space.dtype)


def env_rate(make, seconds: float) -> float:
    """Steps/s of one env stepped from Python with random actions (resets included)."""
    env = make()
    env.reset(seed=0)
    acts = random_actions(env.action_space, 4096, 0)
    n, i = 0, 0
    t0 = time.perf_counter()
    while True:
        for _ in range(64):
            _, _, term, trunc, _ = env.step(acts[i])
            i = (i + 1) % len(acts)
            if term or trunc:
                env.reset()
        n += 64
        dt = time.perf_counter() - t0
        if dt >= seconds:
            env.close()
            return n / dt


def vec_rate(ron: str, observation: str, num_envs: int, seconds: float) -> float:
    """Env steps/s of hjepa's native vector env (next-step autoreset, arrays not copied)."""
    envs = gym.make_vec(
        "hjepa/Scene-v0",
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        scene=ron,
        observation=observation,
        copy=False,
    )
    envs.reset(seed=0)
    acts = random_actions(envs.action_space, 256, 0)
    n, i = 0, 0
    t0 = time.perf_counter()
    while True:
        for _ in range(16):
            envs.step(acts[i])
            i = (i + 1) % len(acts)
        n += 16 * num_envs
        dt = time.perf_counter() - t0
        if dt >= seconds:
            envs.close()
            return n / dt


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_per_env(make, n: int = 100) -> float:
    """Resident bytes added per env, over `n` envs reset and stepped once (after one
    warm-up env, so that one-time allocations are not counted)."""
    warm = make()
    warm.reset(seed=0)
    warm.step(warm.action_space.sample())
    before = rss()
    envs = []
    for k in range(n):
        e = make()
        e.reset(seed=k)
        e.step(e.action_space.sample())
        envs.append(e)
    return max(rss() - before, 0) / n


def memory_in_subprocess(kind: str) -> float | None:
    """`memory_per_env` for `kind` ("hjepa state", "gym-pusht pixels", ...) in a fresh
    interpreter, so that memory freed by earlier rows is not reused and hidden."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory-of", kind], capture_output=True, text=True
    )
    return float(out.stdout.split()[-1]) if out.returncode == 0 and out.stdout else None


def find_hjepa(arg: str | None) -> str | None:
    target = os.environ.get("CARGO_TARGET_DIR")
    candidates = [
        arg,
        os.environ.get("HJEPA_BIN"),
        target and os.path.join(target, "release", "hjepa"),
        str(ROOT / "target" / "release" / "hjepa"),
        shutil.which("hjepa"),
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def bench_sim(binary: str, seconds: float) -> dict[tuple[str, str], float]:
    """`hjepa bench sim`'s rows ((name, threads) -> env steps/s), its gym-pusht peer
    switched off."""
    env = dict(os.environ, HJEPA_BENCH_NO_PEER="1")
    out = subprocess.run(
        [binary, "bench", "sim", "--seconds", str(seconds)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"[0-9]+", cells[2]):
            rows[(cells[0], cells[1])] = float(cells[2])
    return rows


def pick(rows: dict, threads: int, *words: str) -> float | None:
    for (name, t), v in rows.items():
        if t == str(threads) and all(w in name for w in words):
            return v
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds per row and round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; each row is their median")
    ap.add_argument("--hjepa", help="the hjepa binary for `hjepa bench sim`")
    ap.add_argument("--num-envs", type=int, help="vector env size (default 8 per core)")
    ap.add_argument("--memory-of", help=argparse.SUPPRESS)  # internal: one memory row
    args = ap.parse_args()

    cores = len(os.sched_getaffinity(0))
    num_envs = args.num_envs or 8 * cores
    ron = push_t_one_control_step()
    pusht = gym_pusht_version()
    binary = find_hjepa(args.hjepa)

    def hj(obs):
        return lambda: gym.make("hjepa/Scene-v0", scene=ron, observation=obs)

    def gp(obs):
        return lambda: gym.make(PUSHT_ID, obs_type=obs, observation_width=96, observation_height=96)

    if args.memory_of:
        side, obs = args.memory_of.split()
        print(memory_per_env(hj(obs) if side == "hjepa" else gp(obs)))
        return

    samples: dict[str, list[float]] = {}

    def add(key, v):
        if v is not None:
            samples.setdefault(key, []).append(v)

    for r in range(args.rounds):
        for obs in ("state", "pixels"):
            add(f"hjepa {obs}", env_rate(hj(obs), args.seconds))
            if pusht:
                add(f"gym-pusht {obs}", env_rate(gp(obs), args.seconds))
        for obs in ("state", "pixels"):
            add(f"vec {obs}", vec_rate(ron, obs, num_envs, args.seconds))
        if binary:
            rows = bench_sim(binary, args.seconds)
            add("rust state", pick(rows, 1, "push_t, state"))
            add("rust pixels", pick(rows, 1, "push_t, 96x96"))
            add("rust vec state", pick(rows, cores, "vector env", "state"))
            add("rust vec pixels", pick(rows, cores, "vector env", "pixels"))
        print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)

    med = {k: statistics.median(v) for k, v in samples.items()}

    def cell(k):
        if k not in med:
            return "n/a"
        lo, hi = min(samples[k]), max(samples[k])
        return f"{med[k]:,.0f} ({lo:,.0f}–{hi:,.0f})"

    def ratio(a, b, pct=False):
        if a not in med or b not in med:
            return ""
        x = med[a] / med[b]
        return f"{100 * x:.0f} %" if pct else f"{x:.1f}×"

    kinds = ["hjepa state", "hjepa pixels"]
    if pusht:
        kinds += ["gym-pusht state", "gym-pusht pixels"]
    mem = {k: memory_in_subprocess(k) for k in kinds}

    peer = f"gym-pusht {pusht}" if pusht else "gym-pusht (not installed in this Python: n/a)"
    sim = f"`hjepa bench sim` ({binary})" if binary else "`hjepa bench sim` (binary not found: n/a)"
    print(
        f"python/bench.py --seconds {args.seconds:g} --rounds {args.rounds}: {cores} cores, "
        f"Python {sys.version.split()[0]}, gymnasium {gym.__version__}, "
        f"hjepa {hjepa.__version__} ({Path(hjepa.__file__).parent}); "
        f"{peer}; {sim}. Median (min–max) of {args.rounds} rounds, env steps/s."
    )
    print()
    print("| row | hjepa from Python | peer | peer steps/s | hjepa / peer | target |")
    print("|---|---|---|---|---|---|")
    for obs, label, target in (("state", "state", "≥ 8×"), ("pixels", "96×96 pixels", "≥ 30×")):
        print(
            f"| one push_t env, {label} | {cell('hjepa ' + obs)} | gym-pusht | "
            f"{cell('gym-pusht ' + obs)} | {ratio('hjepa ' + obs, 'gym-pusht ' + obs)} | {target} |"
        )
    for obs, label in (("state", "state"), ("pixels", "96×96 pixels")):
        print(
            f"| one push_t env, {label}, Python vs Rust | {cell('hjepa ' + obs)} | "
            f"`hjepa bench sim`, 1 thread | {cell('rust ' + obs)} | "
            f"{ratio('hjepa ' + obs, 'rust ' + obs, pct=True)} | |"
        )
    for obs, label in (("state", "state"), ("pixels", "96×96 pixels")):
        print(
            f"| vector env, {num_envs} × push_t {label}, {cores} threads | {cell('vec ' + obs)} | "
            f"`hjepa bench sim` vector env | {cell('rust vec ' + obs)} | "
            f"{ratio('vec ' + obs, 'rust vec ' + obs, pct=True)} | ≥ 80 % |"
        )
    print()
    kib = {k: "n/a" if v is None else f"{v / 1024:,.0f} KiB" for k, v in mem.items()}
    line = f"Memory per env (resident, over 100 envs): hjepa state {kib['hjepa state']}, "
    line += f"96×96 pixels {kib['hjepa pixels']}"
    if pusht:
        line += f"; gym-pusht state {kib['gym-pusht state']}, pixels {kib['gym-pusht pixels']}"
    print(line + ".")


if __name__ == "__main__":
    main()
