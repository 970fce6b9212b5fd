"""sopdeep.training.make_model and training_data are the network and data train() uses."""

import numpy as np
import torch

from sopdeep.config import TrainConfig
from sopdeep.runs import load_checkpoint
from sopdeep.training import load_data, make_model, train, training_data


def _config(tmp_path, arch):
    return TrainConfig(dataset="synthetic", arch=arch, width=16, epochs=1, batch_size=32,
                       weight_decay=0.0, momentum=0.0, noise="sym", noise_rate=0.4, device="cpu",
                       progress=False, out=str(tmp_path / arch), seed=3, method="ce")


def test_make_model_is_the_network_train_starts_from_and_leaves_the_rng_alone(tmp_path):
    for arch in ("mlp", "cnn"):
        config = _config(tmp_path, arch)
        # a zero loss: no gradient, no momentum, no weight decay, so θ after the epoch is θ₀
        train(config, callbacks={"loss": lambda epoch, step, loss: loss * 0.0})
        trained = load_checkpoint(tmp_path / arch / "checkpoint.pt")["model"]
        data = training_data(config)
        torch.manual_seed(123)
        before = torch.get_rng_state()
        model = make_model(config, data.num_classes, data.x_train.shape[1], tuple(data.x_train.shape[2:]))
        assert torch.equal(torch.get_rng_state(), before)       # the caller's RNG is untouched
        params = dict(model.named_parameters())
        assert params
        for name, value in params.items():                      # bit-identical initialisation
            assert torch.equal(value.detach(), trained[name]), (arch, name)


def test_training_data_is_the_run_subset_with_its_noise(tmp_path):
    config = _config(tmp_path, "mlp").replace(train_subset=50)
    ds, noisy = load_data(config)
    data = training_data(config)
    assert data.n == 50 and data.x_train.dtype == torch.uint8
    np.testing.assert_array_equal(data.y_train.numpy(), noisy.noisy_labels)
    np.testing.assert_array_equal(data.clean_train.numpy(), noisy.clean_labels)
    np.testing.assert_array_equal(data.is_noisy, noisy.is_noisy)
    x = data.normalize(data.x_train)
    assert x.dtype == torch.float32 and x.shape == data.x_train.shape
