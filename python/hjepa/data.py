"""hjepa's datasets from Python: `Dataset` opens a dataset folder (`manifest.json` plus
`shard-NNNNN.safetensors`, as `hjepa collect` and `hjepa.collect` write it) with every
tensor memory-mapped, and `collect` records one with hjepa's own collector.

Only numpy is needed: a safetensors file is 8 bytes of header length (little-endian), a
JSON header naming each tensor's dtype, shape and byte range, and the raw little-endian
data, which `numpy.memmap` maps in place. The format is in hjepa's `src/data/dataset.rs`
and docs/datasets.md.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _hjepa

FORMAT = "hjepa-dataset/1"
MANIFEST = "manifest.json"

#: safetensors dtype names and the numpy dtypes they map to.
_DTYPES = {
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
    "I32": np.dtype("<i4"),
    "U8": np.dtype("u1"),
}

#: What `windows(observation=...)` reads: the observed state vector, the image, or the full
#: physical state.
OBSERVATIONS = {"state": "obs_state", "pixels": "obs_image", "physical": "state"}


def _bad(path: Path, field: str, message: str) -> ValueError:
    """A refusal naming the file and field, as hjepa's own errors do."""
    return ValueError(f"{path}: {field}: {message}" if field else f"{path}: {message}")


def read_safetensors_header(path: Path) -> tuple[dict, int]:
    """The JSON header of a safetensors file and the offset its data starts at; every
    tensor's byte range checked against its dtype, shape and the file's size."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _bad(path, "header", f"truncated safetensors file ({size} bytes)")
        n = int.from_bytes(head, "little")
        if n > size - 8:
            raise _bad(path, "header", f"header length {n} exceeds the file ({size} bytes)")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(path, "header", f"not a safetensors header: {e}") from None
    if not isinstance(header, dict):
        raise _bad(path, "header", "not a safetensors header (expected a JSON object)")
    data_len = size - 8 - n
    for name, t in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = t["dtype"], t["shape"], t["data_offsets"]
            count = int(np.prod(shape, dtype=np.int64))
        except (KeyError, TypeError, ValueError):
            raise _bad(path, name, f"malformed tensor entry {t!r}") from None
        if dtype not in _DTYPES:
            raise _bad(path, name, f"unsupported dtype {dtype!r}")
        if not 0 <= begin <= end <= data_len or end - begin != count * _DTYPES[dtype].itemsize:
            raise _bad(
                path,
                name,
                f"byte range {begin}..{end} does not hold {dtype} {shape} in {data_len} data bytes "
                "(truncated or corrupt shard)",
            )
    return header, 8 + n


class _Shard:
    """One shard's tensors, memory-mapped and checked against the manifest."""

    def __init__(self, path: Path, entry: dict, manifest: dict):
        self.path = path
        self.entry = entry
        header, start = read_safetensors_header(path)
        self._header, self._start = header, start
        self.obs_offsets = self._tensor("obs_offsets", "I64")
        self.action_offsets = self._tensor("action_offsets", "I64")
        e = entry["episodes"]
        for name in ("obs_offsets", "action_offsets"):
            off = getattr(self, name)
            if off.shape != (e + 1,):
                raise _bad(path, name, f"expected shape [{e + 1}] for {e} episodes, got {list(off.shape)}")
            if off[0] != 0 or np.any(np.diff(off) < 0):
                raise _bad(path, name, "expected offsets rising from 0")
        if not np.array_equal(np.diff(self.obs_offsets), np.diff(self.action_offsets) + 1):
            raise _bad(path, "obs_offsets", "every episode needs one more observation than actions")
        self.episode_index = self._tensor("episode_index", "I64", (e,))
        self.episode_seed = self._tensor("episode_seed", "U64", (e,))
        self.success = self._tensor("success", "U8", (e,))
        first = entry["first_episode"]
        if not np.array_equal(self.episode_index, np.arange(first, first + e)):
            raise _bad(path, "episode_index", f"expected episodes {first}..{first + e}")
        n_obs, n_act = int(self.obs_offsets[-1]), int(self.action_offsets[-1])
        if n_act != entry["steps"]:
            raise _bad(path, "action_offsets", f"{n_act} steps, the manifest says {entry['steps']}")
        d, s = len(manifest["obs_state_names"]), len(manifest["state_names"])
        self.obs_state = self._tensor("obs_state", "F32", (n_obs, d))
        self.state = self._tensor("state", "F32", (n_obs, s))
        self.action = self._tensor("action", "F32", (n_act, 2))
        self.cost = self._tensor("cost", "F32", (n_act,))
        image = manifest.get("image_shape")
        self.obs_image = None if image is None else self._tensor("obs_image", "U8", (n_obs, *image))

    def _tensor(self, name: str, dtype: str, shape: tuple | None = None) -> np.ndarray:
        t = self._header.get(name)
        if t is None:
            raise _bad(self.path, name, "tensor missing")
        if t["dtype"] != dtype:
            raise _bad(self.path, name, f"expected dtype {dtype}, got {t['dtype']}")
        if shape is not None and tuple(t["shape"]) != tuple(shape):
            raise _bad(self.path, name, f"expected shape {list(shape)} from the manifest, got {t['shape']}")
        begin, end = t["data_offsets"]
        np_dtype, np_shape = _DTYPES[dtype], tuple(t["shape"])
        if end == begin:
            return np.zeros(np_shape, np_dtype)
        return np.memmap(self.path, np_dtype, "r", offset=self._start + begin, shape=np_shape)

    def rows(self, observation: str) -> np.ndarray:
        return getattr(self, OBSERVATIONS[observation])


@dataclass(frozen=True)
class Episode:
    """One recorded episode: T actions and T + 1 observations, as memory-mapped views."""

    index: int
    seed: int
    success: bool
    #: The shard file holding it.
    shard: Path
    obs_state: np.ndarray
    #: The frames (T + 1, H, W, 3) uint8, None where the dataset has no images.
    obs_image: np.ndarray | None
    #: The full physical state per observation (for probes).
    state: np.ndarray
    action: np.ndarray
    cost: np.ndarray

    def __len__(self) -> int:
        return len(self.action)


class Dataset:
    """A dataset folder as `hjepa collect` writes it, every tensor memory-mapped.

        ds = hjepa.Dataset("data/push_t")
        len(ds)                      # episodes
        ds.episodes[0].obs_image     # (T + 1, H, W, 3) uint8, mapped, not read
        w = ds.windows(4, stride=2)  # observation / action / next_observation batches

    A folder that is not such a dataset (a missing or malformed manifest, a missing,
    truncated or mis-shaped shard) raises ValueError naming the file and the field.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.manifest = self._load_manifest()
        m = self.manifest
        self.scene: str = m["scene"]
        self.obs_state_names: list[str] = m["obs_state_names"]
        self.state_names: list[str] = m["state_names"]
        self.image_shape: tuple | None = None if m["image_shape"] is None else tuple(m["image_shape"])
        self.action_low = np.asarray(m["action_low"], np.float32)
        self.action_high = np.asarray(m["action_high"], np.float32)
        self._shards = []
        for entry in sorted(m["shards"], key=lambda s: s["index"]):
            p = self.path / entry["file"]
            try:
                size = p.stat().st_size
            except OSError as e:
                raise _bad(p, "", f"shard listed in the manifest is missing: {e}") from None
            if size != entry["bytes"]:
                raise _bad(p, "", f"truncated shard: {size} bytes, the manifest says {entry['bytes']}")
            self._shards.append(_Shard(p, entry, m))
        #: Per episode: its index, seed, success, length (actions) and shard number.
        cat = lambda name: np.concatenate(  # noqa: E731
            [np.asarray(getattr(s, name)) for s in self._shards] or [np.zeros(0)]
        )
        self.episode_index = cat("episode_index").astype(np.int64)
        self.episode_seed = cat("episode_seed").astype(np.uint64)
        self.success = cat("success").astype(bool)
        self.episode_lengths = np.concatenate(
            [np.diff(s.action_offsets) for s in self._shards] or [np.zeros(0, np.int64)]
        )
        self._episode_shard = np.concatenate(
            [np.full(s.entry["episodes"], k) for k, s in enumerate(self._shards)] or [np.zeros(0, np.int64)]
        ).astype(np.int64)
        self._episodes: list[Episode] | None = None

    def _load_manifest(self) -> dict:
        p = self.path / MANIFEST
        try:
            text = p.read_text()
        except OSError as e:
            raise _bad(p, "", f"cannot read dataset manifest: {e}") from None
        try:
            m = json.loads(text)
        except json.JSONDecodeError as e:
            raise _bad(p, f"line {e.lineno}, column {e.colno}", e.msg) from None
        if not isinstance(m, dict):
            raise _bad(p, "", "expected a JSON object")
        if m.get("format") != FORMAT:
            raise _bad(p, "format", f"expected {FORMAT!r}, got {m.get('format')!r}")
        kinds = {
            "scene": str,
            "scene_source": str,
            "seed": int,
            "episodes": int,
            "shard_episodes": int,
            "obs_state_names": list,
            "state_names": list,
            "action_low": list,
            "action_high": list,
            "shards": list,
        }
        for key, kind in kinds.items():
            if not isinstance(m.get(key), kind):
                raise _bad(p, key, f"expected a {kind.__name__}, found {m.get(key)!r}")
        image = m.get("image_shape")
        if image is not None and (not isinstance(image, list) or len(image) != 3 or image[2] != 3):
            raise _bad(p, "image_shape", f"expected null or [height, width, 3], found {image!r}")
        m.setdefault("image_shape", None)
        entry_keys = {"index": int, "file": str, "first_episode": int, "episodes": int, "steps": int,
                      "bytes": int, "sha256": str}
        for i, s in enumerate(m["shards"]):
            for key, kind in entry_keys.items():
                if not isinstance(s, dict) or not isinstance(s.get(key), kind):
                    found = s.get(key) if isinstance(s, dict) else s
                    raise _bad(p, f"shards[{i}].{key}", f"expected a {kind.__name__}, found {found!r}")
        return m

    # ---- episodes ----

    def __len__(self) -> int:
        """Episodes in the listed shards."""
        return len(self.episode_index)

    def __getitem__(self, i: int) -> Episode:
        return self.episodes[i]

    @property
    def steps(self) -> int:
        """Transitions (actions) over all episodes."""
        return int(self.episode_lengths.sum())

    @property
    def episodes(self) -> list[Episode]:
        """Every episode, in order, as memory-mapped views (nothing is read until used)."""
        if self._episodes is None:
            eps = []
            for s in self._shards:
                oo, ao = s.obs_offsets, s.action_offsets
                for e in range(s.entry["episodes"]):
                    o, a = slice(int(oo[e]), int(oo[e + 1])), slice(int(ao[e]), int(ao[e + 1]))
                    eps.append(
                        Episode(
                            index=int(s.episode_index[e]),
                            seed=int(s.episode_seed[e]),
                            success=bool(s.success[e]),
                            shard=s.path,
                            obs_state=s.obs_state[o],
                            obs_image=None if s.obs_image is None else s.obs_image[o],
                            state=s.state[o],
                            action=s.action[a],
                            cost=s.cost[a],
                        )
                    )
            self._episodes = eps
        return self._episodes

    def verify(self) -> None:
        """Re-hashes every shard against the manifest's SHA-256 (what `hjepa inspect` does)."""
        for s in self._shards:
            h = hashlib.sha256()
            with open(s.path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            if h.hexdigest() != s.entry["sha256"]:
                raise _bad(s.path, "sha256", "SHA-256 differs from the manifest: the shard is corrupt")

    # ---- windows ----

    def window_index(self, length: int, stride: int = 1) -> dict[str, np.ndarray]:
        """Where the windows of `length` transitions lie: one every `stride` steps in each
        episode at least `length` long (start t, t + stride, ... while t + length <= T).
        Returns per window its `episode` (index), `start` (step in the episode), `shard`,
        and first observation and action rows in that shard."""
        length, stride = int(length), int(stride)
        if length < 1:
            raise ValueError(f"length: expected at least 1 transition, found {length}")
        if stride < 1:
            raise ValueError(f"stride: expected at least 1, found {stride}")
        parts = {k: [] for k in ("episode", "start", "shard", "obs_row", "action_row")}
        for k, s in enumerate(self._shards):
            lengths = np.diff(s.action_offsets)
            for e, t_len in enumerate(lengths):
                starts = np.arange(0, int(t_len) - length + 1, stride, dtype=np.int64)
                parts["episode"].append(np.full(len(starts), s.episode_index[e], np.int64))
                parts["start"].append(starts)
                parts["shard"].append(np.full(len(starts), k, np.int64))
                parts["obs_row"].append(starts + s.obs_offsets[e])
                parts["action_row"].append(starts + s.action_offsets[e])
        return {
            k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in parts.items()
        }

    def _observation_key(self, observation: str) -> None:
        if observation not in OBSERVATIONS:
            raise ValueError(
                f"observation: expected one of {sorted(OBSERVATIONS)}, found {observation!r}"
            )
        if observation == "pixels" and self.image_shape is None:
            raise ValueError(f"{self.path}: observation 'pixels': the dataset has no images")

    def windows(self, length: int, stride: int = 1, observation: str = "state") -> dict[str, np.ndarray]:
        """Every window of `length` transitions (see `window_index`) as batches:
        `observation` (N, length, ...) the observations at steps t .. t + length - 1,
        `action` (N, length, 2) the actions taken there (scene units), `next_observation`
        (N, length, ...) the observations at steps t + 1 .. t + length, `cost` (N, length),
        and `episode` / `start` (N,). `observation`: "state" (the observed state vector),
        "pixels" (the frames, uint8) or "physical" (the full physical state).

        The arrays are copies (read from the mapped shards); for image datasets too large
        for memory use `as_torch`, which reads one window at a time."""
        self._observation_key(observation)
        ix = self.window_index(length, stride)
        steps = np.arange(int(length))
        obs, act, nxt, cost = [], [], [], []
        for k, s in enumerate(self._shards):
            mine = ix["shard"] == k
            o = ix["obs_row"][mine][:, None] + steps
            a = ix["action_row"][mine][:, None] + steps
            rows = s.rows(observation)
            obs.append(rows[o])
            nxt.append(rows[o + 1])
            act.append(s.action[a])
            cost.append(s.cost[a])
        width = self._width(observation)
        empty = lambda dt, *shape: np.zeros((0, int(length), *shape), dt)  # noqa: E731
        dtype = np.uint8 if observation == "pixels" else np.float32
        return {
            "observation": np.concatenate(obs) if obs else empty(dtype, *width),
            "action": np.concatenate(act) if act else empty(np.float32, 2),
            "next_observation": np.concatenate(nxt) if nxt else empty(dtype, *width),
            "cost": np.concatenate(cost) if cost else empty(np.float32),
            "episode": ix["episode"],
            "start": ix["start"],
        }

    def _width(self, observation: str) -> tuple:
        return {
            "state": (len(self.obs_state_names),),
            "pixels": self.image_shape,
            "physical": (len(self.state_names),),
        }[observation]

    def as_torch(self, length: int, stride: int = 1, observation: str = "state"):
        """A `torch.utils.data.Dataset` of the windows `windows(length, stride)` lists,
        reading one window per item from the mapped shards (so a DataLoader can stream a
        dataset larger than memory). Items are dicts of tensors: `observation`, `action`,
        `next_observation`, `cost` and the ints `episode`, `start`. Needs torch (an optional
        dependency); ImportError without it."""
        try:
            import torch
            from torch.utils.data import Dataset as TorchDataset
        except ImportError as e:
            raise ImportError("Dataset.as_torch needs PyTorch (pip install torch)") from e
        self._observation_key(observation)
        ix = self.window_index(length, stride)
        data, length = self, int(length)

        class HjepaWindows(TorchDataset):
            """Windows of an hjepa dataset (`hjepa.Dataset.as_torch`)."""

            def __init__(self):
                self.dataset, self.index, self.length, self.observation = data, ix, length, observation

            def __len__(self) -> int:
                return len(self.index["episode"])

            def __getitem__(self, i: int) -> dict[str, Any]:
                if not -len(self) <= i < len(self):
                    raise IndexError(f"window {i} out of range for {len(self)} windows")
                w = self.dataset._window_at(self.index, i % len(self), self.length, self.observation)
                return {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in w.items()}

        return HjepaWindows()

    def _window_at(self, ix: dict, i: int, length: int, observation: str) -> dict[str, Any]:
        s = self._shards[int(ix["shard"][i])]
        o, a = int(ix["obs_row"][i]), int(ix["action_row"][i])
        rows = s.rows(observation)
        return {
            "observation": np.array(rows[o : o + length]),
            "action": np.array(s.action[a : a + length]),
            "next_observation": np.array(rows[o + 1 : o + 1 + length]),
            "cost": np.array(s.cost[a : a + length]),
            "episode": int(ix["episode"][i]),
            "start": int(ix["start"][i]),
        }

    # Pickled (DataLoader workers under spawn) as the folder's path: mapped arrays reopen.
    def __getstate__(self) -> dict:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["path"])

    def __repr__(self) -> str:
        return (
            f"hjepa.Dataset({str(self.path)!r}: scene {self.scene}, {len(self)} episodes, "
            f"{self.steps} steps{', images ' + 'x'.join(map(str, self.image_shape)) if self.image_shape else ''})"
        )


def collect(
    scene: str,
    policy: str = "smooth-walk",
    episodes: int = 100,
    out: str | os.PathLike | None = None,
    seed: int = 0,
    *,
    noise: float = 0.3,
    shard_episodes: int = 50,
    threads: int | None = None,
    progress: bool = False,
) -> dict:
    """Records a dataset with a scripted policy: exactly what `hjepa collect --scene SCENE
    --policy POLICY --episodes N --out OUT --seed S --noise X --shard-episodes K` writes
    (the same code runs, on `threads` Rust threads with the GIL released), so the files are
    byte-identical. Resumable like the CLI: rerunning records only the missing shards.
    Ctrl-C stops it after each worker's current episode and raises KeyboardInterrupt; the
    shards already written stay listed, so rerunning resumes.

    `scene`: a shipped scene's name or a `.ron` path. `policy`: `random`, `smooth-walk`,
    `waypoint`, `near-body` or `oracle`. Returns a summary dict (episodes_total,
    episodes_recorded, shards_written, steps_recorded, seconds, out)."""
    if out is None:
        raise ValueError("out: required (the dataset folder to write)")
    return _hjepa.collect(
        str(scene), str(policy), int(episodes), os.fspath(out), int(seed), float(noise),
        int(shard_episodes), threads, bool(progress),
    )
