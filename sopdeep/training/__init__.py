"""Training: :func:`train` (``train(config) -> TrainResult``) and the pieces it is made of.

* :mod:`~sopdeep.training.loop`: :func:`train`, :func:`train_one_epoch`, evaluation (:func:`tta_logits`)
  and the finish;
* :mod:`~sopdeep.training.draws`: the random draws of an epoch, in their order;
* :mod:`~sopdeep.training.setup`: the run built in one place (:class:`RunState`: device, precision,
  network, optimiser, method), :func:`make_model`, :func:`check_names`;
* :mod:`~sopdeep.training.data`: :func:`load_data` (dataset and label noise) and :func:`training_data`
  (the device-side :class:`TrainingData`);
* :mod:`~sopdeep.training.schedule`: :func:`learning_rate`.
"""

from sopdeep.training.data import TrainingData, load_data, subset_indices, training_data
from sopdeep.training.loop import NonFiniteLossError, TrainResult, tta_logits, train, train_one_epoch
from sopdeep.training.schedule import learning_rate
from sopdeep.training.setup import RunState, check_names, make_model

__all__ = ["train", "TrainResult", "train_one_epoch", "tta_logits", "learning_rate", "load_data", "subset_indices", "training_data",
           "make_model", "NonFiniteLossError", "check_names", "TrainingData", "RunState"]
