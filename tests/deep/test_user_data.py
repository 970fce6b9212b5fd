"""The user's own data (npz, imagefolder) and the results of a run one can use.

User datasets are trained on their labels as given unless noise is asked for, and the summary
reports the noise actually applied; image-folder runs name each sample's file and take an image
size; :func:`sopdeep.runs.load_model` gives back the trained network of a run folder.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sopdeep import runs
from sopdeep.cli import build_parser, config_from_args, main
from sopdeep.config import TrainConfig
from sopdeep.datasets import DATASETS, load_image_folder, make_synthetic, save_npz
from sopdeep.runs import load_model, read_samples
from sopdeep.training import make_model, train, training_data
from sopdeep.training.data import applied_noise

N_TRAIN, N_TEST, K = 48, 16, 3
# probabilities compared after a conv net: the run predicted on channels_last tensors, the loaded
# net on contiguous ones, and oneDNN may pick another summation order per layout (float32 round-off)
LAYOUT_ATOL = 1e-6


def _npz(tmp_path: Path) -> Path:
    return save_npz(make_synthetic(n_train=N_TRAIN, n_test=N_TEST, num_classes=K, image_size=8, channels=3,
                                   seed=0), tmp_path / "data.npz")


def _config(tmp_path, name="run", **kw):
    base = dict(dataset="npz", data_root=str(_npz(tmp_path)), arch="mlp", width=16, epochs=1, batch_size=16,
                lr=0.05, schedule="constant", device="cpu", amp="off", threads=1, progress=False,
                out=str(tmp_path / name))
    base.update(kw)
    return TrainConfig(**base)


def _folder(root: Path) -> list[str]:
    """A tiny ImageFolder of random-coloured PNGs; the training files in the loader's order."""
    rng = np.random.default_rng(0)
    files = []
    for cls in ("bird", "ant", "cat"):      # not in sorted order on disk: the loader sorts
        for split, names in (("train", ("b2", "a1", "sub/c3")), ("test", ("t0",))):
            for name in names:
                path = root / split / cls / f"{name}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 256, (10, 14, 3), dtype=np.uint8)).save(path)
    for cls in ("ant", "bird", "cat"):      # class indices: sorted names; files: sorted paths
        files += [f"train/{cls}/{name}.png" for name in ("a1", "b2", "sub/c3")]
    return files


# -- (a) user data: no synthetic noise unless asked for -------------------------------------------


def test_the_registry_marks_exactly_npz_and_imagefolder_as_user_data():
    assert {name for name, spec in DATASETS.items() if spec.user_data} == {"npz", "imagefolder"}


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_auto_noise_is_none_on_user_data_and_symmetric_on_benchmarks(name):
    expected = "none" if DATASETS[name].user_data else "sym"
    assert TrainConfig(dataset=name).applied_noise == expected
    assert TrainConfig(dataset=name, noise="sym").applied_noise == "sym"  # asked for: applied everywhere


def test_the_command_line_trains_user_data_on_its_labels_and_refuses_a_lone_noise_rate(tmp_path, capsys):
    parser = build_parser()
    args = parser.parse_args(["--dataset", "npz", "--data-root", "x.npz"])
    assert config_from_args(args).applied_noise == "none"
    args = parser.parse_args(["--dataset", "npz", "--data-root", "x.npz", "--noise", "sym", "--noise-rate", "0.2"])
    config = config_from_args(args)
    assert (config.applied_noise, config.noise_rate) == ("sym", 0.2)
    # a rate without a kind would otherwise be dropped without a word
    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", "npz", "--data-root", "x.npz", "--noise-rate", "0.2", "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert "noise_rate=0.2 has no effect" in capsys.readouterr().err


def test_a_user_dataset_run_trains_on_the_given_labels_and_reports_no_noise(tmp_path):
    config = _config(tmp_path)
    res = train(config)
    with np.load(config.data_root) as f:
        np.testing.assert_array_equal(res.samples["given_label"], f["y_train"])  # the file's labels, unchanged
    assert "clean_label" not in res.samples and "is_noisy" not in res.samples   # nobody knows which are wrong
    summary = json.loads((Path(config.out) / runs.SUMMARY).read_text())
    assert (summary["noise"], summary["noise_rate"], summary["realised_noise_rate"]) == ("none", None, None)
    assert json.loads((Path(config.out) / runs.CONFIG).read_text())["noise"] == "auto"  # the setting, as given


def test_noise_asked_for_on_user_data_is_applied_and_measured(tmp_path):
    res = train(_config(tmp_path, noise="sym", noise_rate=0.25))
    # symmetric noise flips exactly round(rate * N) labels (sopdeep.noise docstring)
    realised = float(np.mean(res.samples["given_label"] != res.samples["clean_label"]))
    assert realised == round(0.25 * N_TRAIN) / N_TRAIN
    assert (res.summary["noise"], res.summary["noise_rate"], res.summary["realised_noise_rate"]) == (
        "sym", 0.25, realised)


@pytest.mark.parametrize("kind, rate, expected", [
    ("none", 0.0, {"noise": "none", "noise_rate": None, "realised_noise_rate": 0.0}),   # the clean labels
    ("sym", 0.4, {"noise": "sym", "noise_rate": 0.4, "realised_noise_rate": 0.4}),
    ("cifar10n", 0.4032, {"noise": "cifar10n", "noise_rate": None, "realised_noise_rate": 0.4032,
                          "noise_label_set": "worst"}),                                 # human labels: no set rate
    ("cifar100n", 0.402, {"noise": "cifar100n", "noise_rate": None, "realised_noise_rate": 0.402,
                          "noise_label_set": "noisy"}),
])
def test_the_summary_reports_the_noise_applied_on_benchmarks(kind, rate, expected):
    config = TrainConfig(dataset="cifar100" if kind == "cifar100n" else "cifar10", noise=kind)
    assert applied_noise(config, rate) == expected


# -- (c), (d) image folders: each sample's file, an image size ------------------------------------


def test_an_image_folder_run_names_each_samples_file_in_the_loaders_order(tmp_path):
    files = _folder(tmp_path / "data")
    ds = load_image_folder(tmp_path / "data", image_size=8)
    assert list(ds.train_paths) == files
    for path, x in zip(files, ds.x_train):  # row i is the file train_paths[i]
        with Image.open(tmp_path / "data" / path) as img:
            np.testing.assert_array_equal(x, np.asarray(img.convert("RGB").resize((8, 8), Image.BILINEAR)))
    config = TrainConfig(dataset="imagefolder", data_root=str(tmp_path / "data"), image_size=8, arch="mlp", width=8,
                         epochs=1, batch_size=4, device="cpu", amp="off", threads=1, progress=False,
                         out=str(tmp_path / "run"))
    res = train(config)
    assert read_samples(config.out)["path"].tolist() == files
    assert res.summary["noise"] == "none"
    # a subset keeps each image with its path (per_class: a seeded stratified draw)
    sub = train(config.replace(train_subset=6, subset_split="per_class", out=str(tmp_path / "sub")))
    given = {path: label for path, label in zip(files, ds.y_train.tolist())}
    assert len(sub.samples["path"]) == 6
    assert [given[p] for p in sub.samples["path"].tolist()] == sub.samples["given_label"].tolist()


def test_image_size_sets_the_size_of_image_folder_images_and_is_checked(tmp_path):
    _folder(tmp_path / "data")
    config = TrainConfig(dataset="imagefolder", data_root=str(tmp_path / "data"), image_size=12)
    assert training_data(config).image_shape == (12, 12, 3)
    assert TrainConfig(dataset="imagefolder").image_size == 32   # the size before it was an option
    with pytest.raises(ValueError, match=r"image_size must be an integer >= 1, got 0"):
        TrainConfig(dataset="imagefolder", image_size=0)
    with pytest.raises(ValueError, match="image_size applies to dataset 'imagefolder' only"):
        TrainConfig(dataset="npz", image_size=64)


# -- item 4: load_model --------------------------------------------------------------------------


@pytest.mark.parametrize("arch, atol", [("mlp", 0.0), ("cnn", LAYOUT_ATOL)])
def test_load_model_reproduces_the_final_predictions_of_the_run(tmp_path, arch, atol):
    config = _config(tmp_path, arch=arch, width=4 if arch == "cnn" else 16, epochs=2, noise="sym")
    train(config)
    saved = read_samples(config.out)["pred_prob"]
    data = training_data(config)
    net = load_model(config.out)
    assert not any(m.training for m in net.modules())  # eval mode: BatchNorm uses its running statistics
    with torch.no_grad():
        standardised = torch.softmax(net(data.normalize(data.x_train)), 1).numpy()
        pixels = torch.softmax(load_model(config.out, pixels=True)(data.x_train), 1).numpy()
    # mlp: the same float32 operations as the run's final prediction, so bit-identical
    np.testing.assert_allclose(standardised, saved, rtol=0, atol=atol)
    np.testing.assert_allclose(pixels, saved, rtol=0, atol=atol)
    # the weights are the trained ones: the network at initialisation predicts something else
    fresh = make_model(config, K, 3, (8, 8)).eval()
    with torch.no_grad():
        initial = torch.softmax(fresh(data.normalize(data.x_train)), 1).numpy()
    assert np.abs(initial - saved).max() > 1e-3


def test_load_model_refuses_missing_and_damaged_run_folders_in_one_line(tmp_path):
    with pytest.raises(ValueError, match="no such run folder"):
        load_model(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no saved run"):
        load_model(tmp_path / "empty")
    no_ckpt = _config(tmp_path, name="no_ckpt", checkpoint=False)
    train(no_ckpt)
    with pytest.raises(ValueError, match="checkpoint=false"):
        load_model(no_ckpt.out)
    config = _config(tmp_path)
    train(config)
    path = Path(config.out) / runs.CHECKPOINT
    good = path.read_bytes()
    path.write_bytes(good[:-10])
    with pytest.raises(ValueError, match="is damaged") as exc_info:
        load_model(config.out)
    assert "\n" not in str(exc_info.value)
    # a checkpoint of an older version, without the record of the network's inputs
    path.write_bytes(good)
    payload = runs.load_checkpoint(path)
    del payload["network"]
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    path.write_bytes(runs._MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
    with pytest.raises(ValueError, match="written before checkpoints recorded the network's inputs"):
        load_model(config.out)
    # weights of another architecture than config.json names
    path.write_bytes(good)
    saved = json.loads((Path(config.out) / runs.CONFIG).read_text())
    (Path(config.out) / runs.CONFIG).write_text(json.dumps({**saved, "width": 8}))
    with pytest.raises(ValueError, match="do not fit arch='mlp'"):
        load_model(config.out)


def test_train_paths_must_name_every_training_image_and_follow_a_subset():
    from sopdeep.datasets import ArrayDataset

    x, y = np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1])
    with pytest.raises(ValueError, match=r"train_paths must be empty or have one path per training image \(2\), got 1"):
        ArrayDataset(x, y, x, y, 2, train_paths=("a.png",))
    ds = ArrayDataset(x, y, x, y, 2, train_paths=("a.png", "b.png"))
    assert ds.subset(train_indices=[1]).train_paths == ("b.png",)
    assert ds.subset(test_indices=[0]).train_paths == ("a.png", "b.png")
