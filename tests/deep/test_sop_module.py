"""SOPLoss in a plain training loop gives what train() gives, for the same configuration."""

from __future__ import annotations

import pytest
import torch

from sopdeep.config import TrainConfig
from sopdeep.sop_module import SOPLoss
from sopdeep.train import learning_rate, make_model, train, training_data


def test_a_plain_loop_with_sop_loss_is_bit_identical_to_train(tmp_path):
    # fp32 (amp off) on the CPU, no augmentation (synthetic data), no weight decay differences:
    # the loop below is the trainer's order of operations written out by hand
    cfg = TrainConfig(dataset="synthetic", arch="mlp", width=32, epochs=2, batch_size=32, lr=0.05,
                      schedule="cosine", weight_decay=5e-4, noise="sym", noise_rate=0.4, device="cpu",
                      amp="off", progress=False, out=str(tmp_path / "run"), alpha_u=3.0, alpha_v=7.0,
                      threads=1, checkpoint=False)
    ref = train(cfg)

    data = training_data(cfg)
    model = make_model(cfg, data.num_classes, data.x_train.shape[1], tuple(data.x_train.shape[2:]))
    model = model.to(memory_format=data.memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    criterion = SOPLoss(data.n, data.num_classes, seed=cfg.seed, alpha_u=3.0, alpha_v=7.0)
    steps = -(-data.n // cfg.batch_size)
    for epoch in range(cfg.epochs):
        order = torch.randperm(data.n, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch))
        for step in range(steps):
            lr = learning_rate(cfg, epoch * steps + step, steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            loss = criterion(model(data.normalize(data.x_train[idx])), data.y_train[idx], idx)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            criterion.step(lr=lr)
    assert torch.equal(criterion.u, ref.state["u"]) and torch.equal(criterion.v, ref.state["v"])
    for key, value in ref.model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
    scores = criterion.noise_scores(data.y_train).numpy()
    assert (scores == ref.samples["noise_score"]).all()


def test_sop_loss_refuses_bad_input_by_name():
    with pytest.raises(ValueError, match="num_classes"):
        SOPLoss(10, 1)
    with pytest.raises(ValueError, match="lambda_c"):
        SOPLoss(10, 3, lambda_c=0.5)  # an SOP+ option
    crit = SOPLoss(10, 3)
    with pytest.raises(ValueError, match="logits must have shape"):
        crit(torch.zeros(2, 4), torch.tensor([0, 1]), torch.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="backward"):
        crit.step(lr=0.1)


def test_authors_step_rule_is_available():
    crit = SOPLoss(6, 3, recipe="authors", lr_u=1.0, lr_v=10.0)
    logits = torch.randn(3, 3, requires_grad=True)
    idx = torch.tensor([0, 2, 4])
    crit(logits, torch.tensor([0, 1, 2]), idx).backward()
    before = crit.v.clone()
    crit.step(lr=123.0)  # ignored by the constant rates
    assert not torch.equal(crit.v[idx], before[idx]) and torch.equal(crit.v[[1, 3, 5]], before[[1, 3, 5]])


def test_the_readme_example_runs_as_written_and_finds_the_wrong_labels():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text[text.index("## SOP in your own training loop"):]
    code = re.search(r"```python\n(.*?)\n```", section, flags=re.S).group(1)
    torch.manual_seed(0)  # the example's own randperm draws
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    from sopdeep.noise import symmetric_noise
    from sopdeep.detection import auroc

    noisy = symmetric_noise(scope["ds"].y_train, 0.4, random_state=0).is_noisy
    # u^2 ranks the flipped labels well above chance after 5 epochs (measured 0.91; chance 0.5)
    assert auroc(scope["criterion"].noise_scores(scope["y"]).numpy(), noisy) > 0.6
