"""``FitConfig``: everything that defines a training run of the Q(query, case) retriever, in one object.

    result = fit("pairs.jsonl", FitConfig(target="advantage", epochs=8), out="checkpoints/retriever")

``fit`` and the LightningModule take it whole (like nanoGPT's ``GPTConfig``); ``memento-lab retriever
train`` has one flag per field, generated from it. Fields are primitives, so a checkpoint keeps them
as plain hyperparameters (a dataclass there breaks ``load_from_checkpoint`` under torch's
``weights_only``). Nothing heavy is imported here: the command line reads it at every start.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from memento_lab.memory.learned.loggers import LoggerKind

Target = Literal["helped", "reward", "advantage", "delta"]
TARGETS: tuple[str, ...] = ("helped", "reward", "advantage", "delta")  # reward: in [0, 1], a soft label
CaseText = Literal["question", "question+plan"]

# hyperparameter names of checkpoints written before FitConfig -> the field they hold
LEGACY_HPARAMS = {"split_seed": "seed"}


class FitConfig(BaseModel):
    """A training run of Q(query, case): what it learns, the network, the optimiser, the split, the hardware."""

    model_config = ConfigDict(extra="forbid")

    # what it learns and from which text
    target: Target = Field(
        "helped", description="what a pair's label is: helped | reward | advantage | delta"
    )
    case_text: CaseText = Field("question", description="what the encoder sees of a case")
    # the network
    freeze_encoder: bool = Field(True, description="train the head only (no: fine-tune the encoder too)")
    train_layers: int = Field(0, ge=0, description="when fine-tuning: the top N transformer layers (0 = all)")
    hidden: int = Field(512, gt=0, description="width of the head's hidden layer")
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    # the optimiser
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0.0, description="learning rate of the head")
    encoder_lr: float = Field(2e-5, gt=0.0, description="learning rate of a fine-tuned encoder")
    weight_decay: float = Field(0.01, ge=0.0)
    # the split by query and the validation metrics
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share of the queries held out")
    seed: int = Field(0, description="seeds the split, the weights and the batches")
    ranking_k: int = Field(
        4, ge=1, description="K of precision@K over held-out queries"
    )  # retrieval.DEFAULT_K
    # the hardware and the run (Lightning's Trainer)
    accelerator: str = Field("auto", description="cpu | gpu | auto")
    devices: int | str = Field("auto", description="a count, or auto")
    strategy: str = Field("auto", description="e.g. ddp (multi-GPU / multi-node)")
    num_nodes: int = Field(1, ge=1)
    logger: LoggerKind = Field(
        "csv",
        description="where the curves go: csv, tensorboard, mlflow (OUT/mlruns) or wandb (offline, OUT/wandb)",
    )
    progress: bool = Field(True, description="a progress bar")
    fast_dev_run: bool = Field(False, description="one batch of each (a smoke test; nothing is saved)")

    @field_validator("devices", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        return int(value) if isinstance(value, str) and value.strip().isdigit() else value

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> FitConfig:
        """The config a checkpoint was trained with, from its hyperparameters (older names too; what
        is not a field, e.g. ``dim`` or ``queries_sha``, is left out)."""
        values = {LEGACY_HPARAMS.get(k, k): v for k, v in hparams.items()}
        return cls(**{k: v for k, v in values.items() if k in cls.model_fields})
