"""Bad input is refused where it enters, by name (issue 18), for the deep package: damaged run files,
impossible datasets, hostile pickles, config values, divergence, out-of-memory and decoder failures.
Each test feeds several inputs of one class and checks that nothing written before is touched."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sopcommon.files import DataFileError
from sopdeep import runs
from sopdeep.cli import describe_failure
from sopdeep.config import TrainConfig
from sopdeep.datasets import load_dataset
from sopdeep.datasets.arrays import ArrayDataset, EmptyDatasetError
from sopdeep.datasets.cifar10_jpeg import DecodeError, decode_cifar10_jpeg, load_cifar10_jpeg
from sopdeep.datasets.npz import save_npz
from sopdeep.runs import NonFiniteLossError, RunFileError, read_run
from sopdeep.training import train

REPO = Path(__file__).resolve().parents[2]


def _tiny(out, **kw):
    base = dict(dataset="synthetic", arch="mlp", width=16, epochs=1, batch_size=64, lr=0.05, schedule="constant",
                noise="sym", noise_rate=0.4, device="cpu", progress=False, out=str(out))
    base.update(kw)
    return TrainConfig(**base)


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_input") / "run"
    train(_tiny(folder))
    return folder


# every damage is (file, new bytes); the error must name that file
_DAMAGE = [
    (runs.SAMPLES, b""),                                    # empty
    (runs.SAMPLES, b"PK\x03\x04 not really a zip"),          # garbage
    ("samples.npz@cut", None),                              # truncated in the middle
    ("samples.npz@ragged", None),                           # arrays of different lengths
    (runs.CONFIG, b"{\"dataset\": "),                       # cut JSON
    (runs.CONFIG, b"\xff\xfe\x00garbage"),                  # not UTF-8
    (runs.CONFIG, b"[1, 2, 3]"),                            # JSON, not an object
    (runs.CONFIG, b"{\"no_such_key\": 1}"),                 # an object, not a TrainConfig
    (runs.METRICS_JSONL, b"{\"epoch\": 1}\n{\"epoch\": 2, \n"),  # a damaged line
    (runs.METRICS_JSONL, b"\x80\x81\x82\n"),                # not UTF-8
    (runs.METRICS_JSONL, b"[1]\n"),                         # a line that is not an object
    (runs.SUMMARY, b"\xff\xd8\xff"),                        # not UTF-8 (a JPEG header)
    (runs.SUMMARY, b"{\"best_test_acc\": 0.9"),             # cut JSON
    (runs.SUMMARY, b"\"just a string\""),                   # JSON, not an object
]


@pytest.mark.parametrize("name,data", _DAMAGE, ids=[f"{n}-{i}" for i, (n, _) in enumerate(_DAMAGE)])
def test_damaged_run_file_is_a_named_error(finished, tmp_path, name, data):
    folder = tmp_path / "run"
    shutil.copytree(finished, folder)
    target = name.split("@")[0]
    if name.endswith("@cut"):
        raw = (folder / target).read_bytes()
        data = raw[: len(raw) // 2]
    elif name.endswith("@ragged"):
        with np.load(folder / target) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["given_label"] = arrays["given_label"][:-1]
        np.savez(folder / target, **arrays)
        data = (folder / target).read_bytes()
    (folder / target).write_bytes(data)
    before = _snapshot(folder)
    with pytest.raises(RunFileError, match=target.replace(".", r"\.")) as info:
        read_run(folder)
    assert isinstance(info.value, (ValueError, runs.RunError)) and "\n" not in str(info.value)
    assert _snapshot(folder) == before                      # reading touches nothing


def test_read_samples_requires_the_asked_keys(finished):
    with pytest.raises(RunFileError, match="missing no_such_array"):
        runs.read_samples(finished, keys=("given_label", "no_such_array"))


# ------------------------------------------------------------------------------------------------
# impossible data: refused when loaded, naming the file


def _arrays(n_train, n_test):
    rng = np.random.default_rng(0)
    return (rng.integers(0, 255, (n_train, 4, 4, 3), dtype=np.uint8), np.arange(n_train) % 2,
            rng.integers(0, 255, (n_test, 4, 4, 3), dtype=np.uint8), np.arange(n_test) % 2)


@pytest.mark.parametrize("n_train,n_test,split", [(0, 3, "training"), (5, 0, "test"), (2, 0, "test"), (0, 2, "training")])
def test_dataset_without_images_is_refused(tmp_path, n_train, n_test, split):
    with pytest.raises(EmptyDatasetError, match=f"no {split} images"):
        ArrayDataset(*_arrays(n_train, n_test), 2, "user")
    # through the command line: one line naming the file, non-zero exit, no run folder written
    path = tmp_path / "user.npz"
    xtr, ytr, xte, yte = _arrays(n_train, n_test)
    np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "sopdeep", "--dataset", "npz", "--data-root", str(path),
                           "--arch", "mlp", "--epochs", "1", "--device", "cpu", "--no-progress", "--out", str(out)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and str(path) in proc.stderr, proc.stderr
    assert not (out / runs.SUMMARY).exists()


def test_decompression_bomb_image_is_named(tmp_path, monkeypatch):
    from PIL import Image

    for split in ("train", "test"):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            Image.new("RGB", (8, 8)).save(tmp_path / split / cls / "ok.png")
    bomb = tmp_path / "train" / "a" / "bomb.png"
    Image.new("RGB", (64, 64)).save(bomb)
    # Pillow raises DecompressionBombError above 2 * MAX_IMAGE_PIXELS: 4096 pixels > 2 * 1000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match="bomb.png is too large to decode"):
        load_dataset("imagefolder", tmp_path, image_size=8)


class _Huge:
    """A pickle asking numpy for an array of 10**13 elements (shape in _reconstruct / ndarray)."""

    def __init__(self, how):
        self.how = how

    def __reduce__(self):
        if self.how == "reconstruct":
            from numpy._core.multiarray import _reconstruct
            return (_reconstruct, (np.ndarray, (10**13,), b"b"))
        if self.how == "ndarray":
            return (np.ndarray, ((10**13,),))
        return (np.ndarray, ((10**7, 10**7), np.float64))


@pytest.mark.parametrize("how", ["reconstruct", "ndarray", "ndarray2d"])
def test_pickle_asking_for_a_huge_array_is_refused_naming_the_file(tmp_path, how):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    batch = root / "data_batch_1"
    batch.write_bytes(pickle.dumps({"data": _Huge(how), "labels": [0]}, protocol=2))
    with pytest.raises(ValueError, match="data_batch_1") as info:
        load_dataset("cifar10", tmp_path)
    assert "not a valid CIFAR python batch" in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------
# the decoded CIFAR-10 JPEG cache is checked against its source; decoder failures are one line


def _fake_export(folder, n_train=4, n_test=2):
    folder.mkdir()
    np.savez(folder / "cifar10_jpeg.npz", y_train=np.arange(n_train) % 10, y_test=np.arange(n_test) % 10)
    (folder / "decode.py").write_text(
        "import sys, numpy as np\n"
        f"np.savez(sys.argv[1], x_train=np.zeros(({n_train}, 32, 32, 3), np.uint8), y_train=np.arange({n_train}) % 10,"
        f" x_test=np.zeros(({n_test}, 32, 32, 3), np.uint8), y_test=np.arange({n_test}) % 10)\n")
    return folder


def test_decoded_cache_must_match_its_source(tmp_path):
    src, cache = _fake_export(tmp_path / "src"), tmp_path / "cache" / "c.npz"
    assert load_cifar10_jpeg(src, cache).n_train == 4                         # decoded, fingerprinted
    # 1. a valid npz of 30 other images put in its place
    rng = np.random.default_rng(0)
    other = ArrayDataset(rng.integers(0, 255, (30, 32, 32, 3), dtype=np.uint8), np.arange(30) % 10,
                         rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8), np.arange(3) % 10, 10)
    save_npz(other, cache)
    with pytest.raises(DataFileError, match=r"c\.npz: does not match its source"):
        load_cifar10_jpeg(src, cache)
    # 2. images of another shape
    save_npz(ArrayDataset(np.zeros((4, 8, 8, 3), np.uint8), np.arange(4), np.zeros((2, 8, 8, 3), np.uint8),
                          np.arange(2), 10), cache)
    with pytest.raises(DataFileError, match=r"images of shape \(8, 8, 3\)"):
        load_cifar10_jpeg(src, cache)
    # 3. the right counts, but the source file changed since it was decoded
    load_cifar10_jpeg(src, cache, overwrite=True)
    np.savez(src / "cifar10_jpeg.npz", y_train=np.arange(4) % 10 + 1, y_test=np.arange(2) % 10)
    before = cache.read_bytes()
    with pytest.raises(DataFileError, match="fingerprints differ"):
        load_cifar10_jpeg(src, cache)
    assert cache.read_bytes() == before                                       # refused, not replaced


@pytest.mark.parametrize("script,match", [
    ("raise ModuleNotFoundError(\"No module named 'PIL'\")", "ModuleNotFoundError: No module named 'PIL'"),
    ("import sys; sys.exit(3)", "exit code 3: no message on stderr"),
    ("import sys; print('line one', file=sys.stderr); sys.exit('out of disk')", "out of disk"),
])
def test_decoder_failure_is_one_line(tmp_path, script, match):
    src = _fake_export(tmp_path / "src")
    (src / "decode.py").write_text(script + "\n")
    with pytest.raises(DecodeError, match=match) as info:
        decode_cifar10_jpeg(src, tmp_path / "c.npz")
    assert "\n" not in str(info.value) and not (tmp_path / "c.npz").exists()
    message = describe_failure(info.value, TrainConfig(out=str(tmp_path / "run")))
    assert "unexpected" not in message and "\n" not in message and match in message


# ------------------------------------------------------------------------------------------------
# config values, divergence, out of memory


def test_train_refuses_a_dict_and_an_empty_out(tmp_path):
    for bad in ({"dataset": "synthetic"}, None, "config.json"):
        with pytest.raises(ValueError, match=r"config must be a TrainConfig.*TrainConfig.from_dict"):
            train(bad)
    for out in ("", "  "):
        with pytest.raises(ValueError, match="out must name a run folder"):
            train(_tiny(out))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("out", ["", " "])
def test_cli_refuses_an_empty_out(tmp_path, out):
    proc = subprocess.run([sys.executable, "-m", "sopdeep", "--dataset", "synthetic", "--epochs", "1",
                           "--device", "cpu", "--no-progress", "--out", out],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and len(proc.stderr.strip().splitlines()) == 1 and "--out" in proc.stderr
    assert list(tmp_path.iterdir()) == []                   # nothing written into the current folder


def test_divergence_in_predictions_is_divergence(tmp_path, monkeypatch):
    # lr 1e12: the training loss may stay finite while the logits overflow
    folder = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match="lower lr") as info:
        train(_tiny(folder, lr=1e12, method="ce"))
    assert "diverged" in str(info.value) and not (folder / runs.SUMMARY).exists()
    # epoch 1 good, then the network blows up after the last step of epoch 2: epoch 1's checkpoint is kept
    import sopdeep.training.loop as loop

    captured = {}
    real_build = loop.build_run
    monkeypatch.setattr(loop, "build_run", lambda *a, **k: captured.setdefault("run", real_build(*a, **k)))
    snapshot = {}

    def on_epoch(epoch, row):
        snapshot["ckpt"] = (folder2 / runs.CHECKPOINT).read_bytes()

    def on_step(epoch, step):
        if epoch == 1:
            import torch
            with torch.no_grad():
                for p in captured["run"].model.parameters():
                    p.mul_(1e30)                            # after the step's loss: the loss stays finite

    folder2 = tmp_path / "run2"
    with pytest.raises(NonFiniteLossError, match="lower lr"):
        train(_tiny(folder2, epochs=3, method="ce"), callbacks={"epoch": on_epoch, "step": on_step})
    assert (folder2 / runs.CHECKPOINT).read_bytes() == snapshot["ckpt"]   # the last good one
    assert runs.load_checkpoint(folder2 / runs.CHECKPOINT)["epoch"] == 1
    assert not (folder2 / runs.SUMMARY).exists()


@pytest.mark.parametrize("exc", [
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                 "you tried to allocate 80000000000 bytes. Error code 12 (Cannot allocate memory)"),
    RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB"),
    MemoryError(),
    RuntimeError("wrapper").with_traceback(None),
])
def test_out_of_memory_is_one_line(tmp_path, exc):
    if str(exc) == "wrapper":                               # the allocator's error as a cause
        try:
            raise RuntimeError("evaluation failed") from RuntimeError("DefaultCPUAllocator: can't allocate memory")
        except RuntimeError as chained:
            exc = chained
    message = describe_failure(exc, TrainConfig(out=str(tmp_path / "run")))
    assert message.startswith("out of memory") and "eval_batch_size" in message and "\n" not in message
