"""Run by ``torch.distributed.run`` from test_distributed.py: train, then dump this rank's state.

Usage: python -m torch.distributed.run --standalone --nproc_per_node 2 tests/deep/ddp_worker.py OUT METHOD
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from sopdeep.config import TrainConfig  # noqa: E402
from sopdeep.training import train  # noqa: E402

out, method = sys.argv[1], sys.argv[2]
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
cfg = TrainConfig(dataset="synthetic", arch="cnn", width=8, epochs=6, batch_size=32, lr=0.05, method=method,
                  noise="sym", noise_rate=0.3, schedule="cosine", device="cpu", progress=False, out=out, seed=seed)
res = train(cfg)
rank = int(os.environ.get("RANK", "0"))
torch.save({"state": res.state, "method_state": res.method_state, "model": res.model.state_dict(), "test_acc": torch.tensor(res.history[-1]["test_acc"]),
            "train_loss": torch.tensor(res.history[-1]["train_loss"])}, Path(out) / f"rank{rank}.pt")
