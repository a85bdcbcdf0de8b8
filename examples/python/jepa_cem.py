"""A small PyTorch JEPA trained on an hjepa dataset, planned with CEM, evaluated by hjepa.

The whole loop of a world-model planning agent in one file, in plain PyTorch, on hjepa's
point_maze_u scene (Gymnasium-Robotics PointMaze U-maze; state observations: the ball's
position and velocity; an env step holds one force for 5 control steps):

1. collect: `hjepa.collect` records smooth random walks (as `hjepa collect` does);
2. train: an encoder MLP state -> z and an action-conditioned predictor (z, a) -> z' on
   windows from `hjepa.Dataset(...).windows(...)`: multi-step latent prediction, with
   VICReg's variance and covariance terms against collapse (no target network: the
   targets are the encoder's own outputs, gradients flowing, as in PLDM), plus a small
   temporal-smoothness term and an inverse-dynamics head, the terms hjepa's own level-1
   loss uses (agents/point_maze_u.toml);
3. plan: CEM over action sequences in latent space, the cost being the squared latent
   distance to the goal's encoding summed over the plan's predicted states (`--cost last`:
   at its last step only, DINO-WM's objective and hjepa's point_maze_u agent's, which
   overshot the goal with this smaller model: 37/50 against 46/50 summed, on eval seed 1);
   horizon 8, 300 samples, 30 elites, 6 iterations, as agents/point_maze_u.toml's
   planner; replanned at every env step, warm-started from the previous plan shifted by
   one step;
4. evaluate: `hjepa.evaluate(policy, "point_maze_u", episodes=N, seed=0)` plays the
   start/goal pairs `hjepa eval --scene point_maze_u --episodes N --seed 0` plays, and
   `hjepa.evaluate("random", ...)` the random floor on the same pairs.

    python examples/python/jepa_cem.py                      # defaults: a few minutes on 2 cores
    python examples/python/jepa_cem.py --seed 1 --episodes 100 --train-steps 4000
    python examples/python/jepa_cem.py --data data/point_maze_u_py   # keep the dataset

Seeded (numpy, torch, the CEM noise per episode): a rerun on the same machine prints the
same numbers. Results and timings: docs/python.md, "Example: a PyTorch JEPA planned with
CEM". point_maze_u's random floor is high (about 80 %: start and goal are drawn anywhere at
least 1 m apart in a 3 x 3-cell maze), so compare against the floor printed beside it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import hjepa


def mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(inp, hidden), nn.LayerNorm(hidden), nn.GELU(),
        nn.Linear(hidden, hidden), nn.GELU(),
        nn.Linear(hidden, out),
    )


class JEPA(nn.Module):
    """Encoder state -> z (the state standardised with the dataset's statistics first),
    predictor (z, a) -> z' as a residual step, and an inverse-dynamics head (z, z') -> a."""

    def __init__(self, state_dim: int, action_dim: int, latent: int, hidden: int,
                 mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.encoder = mlp(state_dim, hidden, latent)
        self.predictor = mlp(latent + action_dim, hidden, latent)
        self.idm = mlp(2 * latent, hidden // 2, action_dim)

    def encode(self, s: torch.Tensor) -> torch.Tensor:
        return self.encoder((s - self.mean) / self.std)

    def predict(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return z + self.predictor(torch.cat([z, a], -1))


def vicreg_terms(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """VICReg's variance (hinge on each dimension's std at 1) and covariance
    (off-diagonal squared covariances / dim) terms over a batch of latents (N, D)."""
    z = z - z.mean(0)
    std = torch.sqrt(z.var(0) + 1e-4)
    var_loss = F.relu(1.0 - std).mean()
    cov = (z.T @ z) / (z.shape[0] - 1)
    off = cov - torch.diag(torch.diag(cov))
    return var_loss, off.pow(2).sum() / z.shape[1]


def jepa_loss(model: JEPA, obs: torch.Tensor, act: torch.Tensor, nxt: torch.Tensor,
              w: dict) -> tuple[torch.Tensor, dict]:
    """obs, nxt: (B, H, S) states at t .. t+H-1 and t+1 .. t+H; act: (B, H, A)."""
    B, H, _ = obs.shape
    states = torch.cat([obs[:, :1], nxt], 1)             # (B, H+1, S)
    z = model.encode(states)                             # (B, H+1, D)
    zhat, pred = z[:, 0], 0.0
    for t in range(H):                                   # roll the predictor out H steps
        zhat = model.predict(zhat, act[:, t])
        pred = pred + F.mse_loss(zhat, z[:, t + 1])
    pred = pred / H
    var_loss, cov_loss = vicreg_terms(z.reshape(B * (H + 1), -1))
    time_sim = F.mse_loss(z[:, 1:], z[:, :-1])
    idm = F.mse_loss(model.idm(torch.cat([z[:, :-1], z[:, 1:]], -1)), act)
    loss = (w["pred"] * pred + w["std"] * var_loss + w["cov"] * cov_loss
            + w["time_sim"] * time_sim + w["idm"] * idm)
    parts = {"pred": pred, "std": var_loss, "cov": cov_loss, "time_sim": time_sim, "idm": idm}
    return loss, {k: v.item() for k, v in parts.items()}


def train(model: JEPA, w_train: dict, w_val: dict, steps: int, batch: int, lr: float,
          rng: np.random.Generator, weights: dict, log_every: int) -> dict:
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    tensors = {k: torch.from_numpy(w_train[k]) for k in ("observation", "action", "next_observation")}
    n = len(tensors["observation"])
    parts = {}
    for step in range(1, steps + 1):
        ix = torch.from_numpy(rng.integers(0, n, batch))
        loss, parts = jepa_loss(model, tensors["observation"][ix], tensors["action"][ix],
                                tensors["next_observation"][ix], weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log_every and (step % log_every == 0 or step == steps):
            print(f"  step {step:5d}  loss {loss.item():.4f}  "
                  + "  ".join(f"{k} {v:.4f}" for k, v in parts.items()), flush=True)
    with torch.no_grad():
        _, val = jepa_loss(model, *(torch.from_numpy(w_val[k]) for k in
                                    ("observation", "action", "next_observation")), weights)
    return val


class CEMPlanner:
    """Model-predictive control by the cross-entropy method in the JEPA's latent space:
    minimise ||z_H - z_goal||^2 over action sequences in [-1, 1]^(H x 2)."""

    def __init__(self, model: JEPA, horizon: int, samples: int, elites: int, iterations: int,
                 init_std: float, seed: int, cost: str = "sum"):
        self.cost = cost
        self.model, self.horizon, self.samples = model, horizon, samples
        self.elites, self.iterations, self.init_std, self.seed = elites, iterations, init_std, seed
        self.mean = torch.zeros(horizon, 2)
        self.gen = torch.Generator().manual_seed(seed)
        self.z_goal = None
        self.calls = 0

    def reset(self, obs: dict, info: dict) -> None:
        """Called by hjepa.evaluate at each episode's start: a fresh plan, CEM noise seeded
        by the episode so results do not depend on which episodes ran before."""
        self.mean = torch.zeros(self.horizon, 2)
        self.gen = torch.Generator().manual_seed(self.seed * 1_000_003 + int(info["episode"]))
        with torch.no_grad():
            self.z_goal = self.model.encode(torch.as_tensor(info["goal_observation"]).float()[None])

    @torch.no_grad()
    def __call__(self, obs: dict, info: dict) -> np.ndarray:
        self.calls += 1
        z0 = self.model.encode(torch.as_tensor(obs["observation"]).float()[None])
        mean, std = self.mean.clone(), torch.full((self.horizon, 2), self.init_std)
        for _ in range(self.iterations):
            noise = torch.randn(self.samples, self.horizon, 2, generator=self.gen)
            acts = (mean + std * noise).clamp(-1.0, 1.0)
            acts[0] = mean.clamp(-1.0, 1.0)              # keep the current mean as a candidate
            z, cost = z0.expand(self.samples, -1), 0.0
            for t in range(self.horizon):
                z = self.model.predict(z, acts[:, t])
                if self.cost == "sum" or t == self.horizon - 1:
                    cost = cost + (z - self.z_goal).pow(2).sum(-1)
            elite = acts[cost.topk(self.elites, largest=False).indices]
            mean, std = elite.mean(0), elite.std(0).clamp_min(0.05)
        self.mean = torch.cat([mean[1:], torch.zeros(1, 2)])   # warm start for the next step
        return mean[0].clamp(-1.0, 1.0).numpy().astype(np.float32)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--scene", default="point_maze_u", help="a shipped scene with state observations")
    p.add_argument("--episodes", type=int, default=100, help="evaluation episodes")
    p.add_argument("--eval-seed", type=int, default=0, help="hjepa.evaluate's seed (the start/goal pairs)")
    p.add_argument("--seed", type=int, default=0, help="training seed (numpy, torch, CEM noise)")
    p.add_argument("--data", default=None, help="dataset folder (reused if complete); default a temporary one")
    p.add_argument("--data-episodes", type=int, default=500)
    p.add_argument("--data-seed", type=int, default=1)
    p.add_argument("--train-steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--window", type=int, default=4, help="transitions per training window (predictor rollout)")
    p.add_argument("--latent", type=int, default=16)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--time-sim", type=float, default=1.0, help="weight of the temporal-smoothness term")
    p.add_argument("--std-weight", type=float, default=16.0, help="weight of VICReg's variance term")
    p.add_argument("--horizon", type=int, default=8)
    p.add_argument("--samples", type=int, default=300)
    p.add_argument("--elites", type=int, default=30)
    p.add_argument("--iterations", type=int, default=6)
    p.add_argument("--cost", choices=("last", "sum"), default="sum",
                   help="latent distance to the goal at the plan's last step, or summed over its steps")
    p.add_argument("--init-std", type=float, default=0.7)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: fastest for these sizes, and reproducible)")
    p.add_argument("--no-random-floor", action="store_true")
    p.add_argument("--json", default=None, help="also write the summary to this file")
    args = p.parse_args(argv)

    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)

    tmp = None
    if args.data is None:
        tmp = tempfile.TemporaryDirectory(prefix="hjepa-jepa-cem-")
        data = Path(tmp.name) / args.scene
    else:
        data = Path(args.data)
    try:
        # 1. Collect (resumable: an existing complete folder is reused as is).
        t0 = time.perf_counter()
        info = hjepa.collect(args.scene, "smooth-walk", episodes=args.data_episodes, out=data,
                             seed=args.data_seed)
        ds = hjepa.Dataset(data)
        w = ds.windows(args.window, stride=1, observation="state")
        t_collect = time.perf_counter() - t0
        print(f"collect: {len(ds)} episodes, {ds.steps} transitions, {len(w['observation'])} "
              f"windows of {args.window} ({info['episodes_recorded']} episodes recorded now, "
              f"{t_collect:.1f} s)", flush=True)

        # Hold out 10 % of the episodes for a validation loss.
        episodes = np.unique(w["episode"])
        val_eps = rng.choice(episodes, max(1, len(episodes) // 10), replace=False)
        is_val = np.isin(w["episode"], val_eps)
        if is_val.all():
            is_val[:] = False
        w_train = {k: v[~is_val] for k, v in w.items()}
        w_val = {k: v[is_val] if is_val.any() else v[:1] for k, v in w.items()}
        states = w_train["observation"].reshape(-1, w_train["observation"].shape[-1])

        # 2. Train.
        t0 = time.perf_counter()
        model = JEPA(states.shape[1], w["action"].shape[-1], args.latent, args.hidden,
                     states.mean(0), states.std(0) + 1e-6)
        weights = {"pred": 1.0, "std": args.std_weight, "cov": 1.0, "time_sim": args.time_sim, "idm": 1.0}
        print(f"train: {args.train_steps} steps, batch {args.batch_size}, latent {args.latent}, "
              f"{sum(p.numel() for p in model.parameters())} parameters", flush=True)
        val = train(model, w_train, w_val, args.train_steps, args.batch_size, args.lr, rng,
                    weights, log_every=max(args.train_steps // 5, 1))
        model.eval()
        t_train = time.perf_counter() - t0
        print(f"train: {t_train:.1f} s; validation " + "  ".join(f"{k} {v:.4f}" for k, v in val.items()),
              flush=True)

        # 3-4. Plan with CEM, evaluate on hjepa's start/goal pairs.
        t0 = time.perf_counter()
        planner = CEMPlanner(model, args.horizon, args.samples, args.elites, args.iterations,
                             args.init_std, args.seed, args.cost)
        res = hjepa.evaluate(planner, args.scene, episodes=args.episodes, seed=args.eval_seed)
        t_eval = time.perf_counter() - t0
        lo, hi = res["success_ci95"]
        print(f"JEPA + CEM: {res['successes']}/{res['episodes']} "
              f"(95 % CI {100 * lo:.1f}-{100 * hi:.1f} %), median steps to success "
              f"{res['median_steps_to_success']}, {1000 * t_eval / max(planner.calls, 1):.1f} ms "
              f"per replan ({t_eval:.1f} s)", flush=True)

        summary = {
            "scene": args.scene, "seed": args.seed, "eval_seed": args.eval_seed,
            "episodes": res["episodes"], "successes": res["successes"],
            "success_ci95": [lo, hi], "train_steps": args.train_steps,
            "validation": val, "collect_s": t_collect, "train_s": t_train, "eval_s": t_eval,
        }
        if not args.no_random_floor:
            floor = hjepa.evaluate("random", args.scene, episodes=args.episodes, seed=args.eval_seed)
            flo, fhi = floor["success_ci95"]
            print(f"random floor (same pairs): {floor['successes']}/{floor['episodes']} "
                  f"(95 % CI {100 * flo:.1f}-{100 * fhi:.1f} %)", flush=True)
            summary["random_successes"] = floor["successes"]
            summary["random_ci95"] = [flo, fhi]
        summary["total_s"] = time.perf_counter() - t_start
        print(f"total: {summary['total_s']:.1f} s", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")
        return summary
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()
