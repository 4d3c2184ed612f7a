"""The learned retriever Q(query, case): everything that needs torch, loaded only when used.

- ``config``: ``FitConfig``, one training run in one object (the CLI's flags come from it)
- ``qnet``: the network (a LightningModule over a shared sentence encoder) and its checkpoints
- ``pair_data``: pair files, targets (helped, reward, advantage, delta), the split by query, the DataModule
- ``training``: ``fit`` and ``evaluate`` (learned vs similarity-only, pair and within-query metrics)
- ``loggers``: where the training curves go (csv, tensorboard, mlflow, wandb)
- ``metrics``: AUC, F1, within-query ranking
- ``parametric``: ``ParametricRetriever``, the trained Q as a retriever, with online updates
"""

from memento_lab.exports import lazy

_EXPORTS = {
    "FitConfig": "memento_lab.memory.learned.config",
    "RetrieverModule": "memento_lab.memory.learned.qnet",
    "fit": "memento_lab.memory.learned.training",
    "evaluate": "memento_lab.memory.learned.training",
    "FitResult": "memento_lab.memory.learned.training",
    "ParametricRetriever": "memento_lab.memory.learned.parametric",
    "UpdateConfig": "memento_lab.memory.learned.parametric",
    "RetrievalConfig": "memento_lab.memory.learned.parametric",
    "load_pairs": "memento_lab.memory.learned.pair_data",
}
__all__ = sorted(_EXPORTS)
__getattr__ = lazy(__name__, _EXPORTS)
