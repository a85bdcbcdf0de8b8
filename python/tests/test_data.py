"""`hjepa.Dataset`: memory-mapped shards, episodes, windows, the torch adapter, bad folders."""

import json
import pickle
import shutil

import numpy as np
import pytest

import hjepa


def test_episodes_are_the_shards_tensors(push_t_data):
    st = pytest.importorskip("safetensors.numpy")
    ds = hjepa.Dataset(push_t_data)
    m = json.loads((push_t_data / "manifest.json").read_text())
    assert len(ds) == 3 and ds.scene == "push_t" and ds.image_shape == (96, 96, 3)
    assert ds.steps == sum(s["steps"] for s in m["shards"])
    eps = ds.episodes
    assert [e.index for e in eps] == [0, 1, 2]
    assert isinstance(eps[0].obs_image, np.memmap), "frames are mapped, not read"
    for shard in m["shards"]:
        d = st.load_file(push_t_data / shard["file"])
        for k in range(shard["episodes"]):
            e = eps[shard["first_episode"] + k]
            o = slice(*d["obs_offsets"][k : k + 2])
            a = slice(*d["action_offsets"][k : k + 2])
            for name, rows in (("obs_state", o), ("obs_image", o), ("state", o), ("action", a), ("cost", a)):
                assert np.array_equal(getattr(e, name), d[name][rows]), name
            assert e.seed == d["episode_seed"][k] and e.success == bool(d["success"][k])
            assert len(e) == len(e.action) == len(e.obs_state) - 1
    assert np.array_equal(ds.episode_seed, [e.seed for e in eps])
    assert np.array_equal(ds.episode_lengths, [len(e) for e in eps])
    ds.verify()


@pytest.mark.parametrize("observation", ["state", "pixels", "physical"])
def test_windows_slice_the_episodes(push_t_data, observation):
    ds = hjepa.Dataset(push_t_data)
    length, stride = 5, 7
    w = ds.windows(length, stride, observation=observation)
    field = hjepa.data.OBSERVATIONS[observation]
    expected = sum(len(range(0, len(e) - length + 1, stride)) for e in ds.episodes)
    assert len(w["episode"]) == expected > 0
    assert w["observation"].shape[:2] == (expected, length)
    assert w["action"].shape == (expected, length, 2) and w["cost"].shape == (expected, length)
    for i in range(expected):
        e, t = ds[int(w["episode"][i])], int(w["start"][i])
        rows = getattr(e, field)
        assert np.array_equal(w["observation"][i], rows[t : t + length])
        assert np.array_equal(w["next_observation"][i], rows[t + 1 : t + 1 + length])
        assert np.array_equal(w["action"][i], e.action[t : t + length])
        assert np.array_equal(w["cost"][i], e.cost[t : t + length])
    # Windows never cross episodes: the last one ends at the episode's last observation.
    assert max(int(s) for s in w["start"]) + length <= max(len(e) for e in ds.episodes)


def test_windows_longer_than_every_episode_are_none(push_t_data):
    ds = hjepa.Dataset(push_t_data)
    w = ds.windows(10_000)
    assert w["observation"].shape == (0, 10_000, 7) and w["action"].shape == (0, 10_000, 2)
    with pytest.raises(ValueError, match="length"):
        ds.windows(0)
    with pytest.raises(ValueError, match="stride"):
        ds.windows(3, stride=0)
    with pytest.raises(ValueError, match="observation"):
        ds.windows(3, observation="depth")


def test_torch_adapter(push_t_data):
    torch = pytest.importorskip("torch")
    ds = hjepa.Dataset(push_t_data)
    w = ds.windows(4, 3, observation="pixels")
    t = ds.as_torch(4, 3, observation="pixels")
    assert isinstance(t, torch.utils.data.Dataset)
    assert len(t) == len(w["episode"])
    for i in (0, len(t) // 2, -1):
        item = t[i]
        for k in ("observation", "action", "next_observation", "cost"):
            assert torch.equal(item[k], torch.from_numpy(w[k][i])), k
        assert item["episode"] == w["episode"][i] and item["start"] == w["start"][i]
    with pytest.raises(IndexError):
        t[len(t)]
    batch = next(iter(torch.utils.data.DataLoader(ds.as_torch(4, 3), batch_size=8)))
    assert batch["observation"].shape == (8, 4, 7) and batch["observation"].dtype == torch.float32


def test_pickles_as_its_path(push_t_data):
    ds = pickle.loads(pickle.dumps(hjepa.Dataset(push_t_data)))
    assert len(ds) == 3 and isinstance(ds.episodes[0].obs_state, np.memmap)
    assert len(pickle.dumps(hjepa.Dataset(push_t_data))) < 1000, "no tensor data in the pickle"


# ---- bad folders: ValueError naming the file and the field ----


@pytest.fixture
def copy(push_t_data, tmp_path):
    out = tmp_path / "d"
    shutil.copytree(push_t_data, out)
    return out


def edit_manifest(folder, edit):
    p = folder / "manifest.json"
    m = json.loads(p.read_text())
    edit(m)
    p.write_text(json.dumps(m))


def refused(folder, *fragments):
    with pytest.raises(ValueError) as e:
        hjepa.Dataset(folder)
    for f in fragments:
        assert f in str(e.value), (f, str(e.value))


def test_a_folder_without_manifest(tmp_path):
    refused(tmp_path, "manifest.json", "cannot read dataset manifest")


def test_a_manifest_of_another_format(copy):
    edit_manifest(copy, lambda m: m.update(format="hjepa-dataset/9"))
    refused(copy, "manifest.json", "format", "hjepa-dataset/1")


def test_a_manifest_that_is_not_json(copy):
    (copy / "manifest.json").write_text("{\n  \"format\": ")
    refused(copy, "manifest.json", "line 2")


def test_a_manifest_without_a_field(copy):
    edit_manifest(copy, lambda m: m.pop("state_names"))
    refused(copy, "manifest.json", "state_names")
    edit_manifest(copy, lambda m: m.update(state_names=[], shards=[{"index": 0}]))
    refused(copy, "manifest.json", "shards[0].file")


def test_a_missing_shard(copy):
    (copy / "shard-00001.safetensors").unlink()
    refused(copy, "shard-00001.safetensors", "missing")


def test_a_truncated_shard(copy):
    p = copy / "shard-00000.safetensors"
    p.write_bytes(p.read_bytes()[:-100])
    refused(copy, "shard-00000.safetensors", "truncated")
    # Truncated and listed so: the header's byte ranges no longer fit.
    edit_manifest(copy, lambda m: m["shards"][0].update(bytes=p.stat().st_size))
    refused(copy, "shard-00000.safetensors", "obs_image", "truncated or corrupt")


def rewrite_header(path, old, new):
    data = path.read_bytes()
    assert len(old) == len(new) and data.count(old) == 1
    path.write_bytes(data.replace(old, new))


def test_a_tensor_of_another_dtype(copy):
    p = copy / "shard-00000.safetensors"
    rewrite_header(p, b'"cost":{"dtype":"F32"', b'"cost":{"dtype":"I32"')
    edit_manifest(copy, lambda m: None)
    refused(copy, "shard-00000.safetensors", "cost", "expected dtype F32, got I32")


def test_a_tensor_of_another_shape(copy):
    edit_manifest(copy, lambda m: m["obs_state_names"].pop())
    refused(copy, "shard-00000.safetensors", "obs_state", "expected shape")


def test_a_missing_tensor(copy):
    p = copy / "shard-00000.safetensors"
    rewrite_header(p, b'"success":', b'"sucness":')
    refused(copy, "shard-00000.safetensors", "success", "tensor missing")


def test_a_corrupt_header(copy):
    p = copy / "shard-00001.safetensors"
    data = bytearray(p.read_bytes())
    data[0:8] = (10**9).to_bytes(8, "little")
    p.write_bytes(bytes(data))
    refused(copy, "shard-00001.safetensors", "header")


def test_a_shard_with_other_episodes(copy):
    edit_manifest(copy, lambda m: m["shards"][1].update(first_episode=5))
    refused(copy, "shard-00001.safetensors", "episode_index")


def test_verify_finds_a_flipped_byte(copy):
    p = copy / "shard-00001.safetensors"
    data = bytearray(p.read_bytes())
    data[-1] ^= 1
    p.write_bytes(bytes(data))
    ds = hjepa.Dataset(copy)  # shapes and sizes are fine
    with pytest.raises(ValueError, match="shard-00001.safetensors: sha256"):
        ds.verify()
