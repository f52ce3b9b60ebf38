"""Optional PyTorch candidates of the network trainer: ``ann`` (an MLP) and ``lstm``.

Imported only when PyTorch is installed (``pip install torch``; see
:func:`ml.network.training.torch_available`). Both learn the standardised persistence residual
``y - last`` from the standardised lag features with the Huber loss and Adam, a fixed number of
epochs, one thread and a fixed seed (deterministic on one machine). The ``ann`` sees the flat
feature vector; the ``lstm`` reads the lags oldest first, one step per lag (the input fields'
values and missing flags), and its last hidden state is joined with ``<field>_last`` /
``<field>_age`` before the output layer. ``hidden_size`` comes from the config.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from ml.network.candidates import NetworkCandidate
from ml.network.configs import Architecture, ModelConfig

__all__ = ["NeuralCandidate"]


class _MLP(nn.Module):
    def __init__(self, n_in: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_in, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class _LSTM(nn.Module):
    def __init__(self, steps: int, per_step: int, extra: int, hidden: int) -> None:
        super().__init__()
        self.steps, self.per_step = steps, per_step
        self.lstm = nn.LSTM(per_step, hidden, batch_first=True)
        self.head = nn.Linear(hidden + extra, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_seq = self.steps * self.per_step
        seq = x[:, :n_seq].reshape(-1, self.steps, self.per_step).flip(1)  # oldest lag first
        _, (h, _) = self.lstm(seq)
        return self.head(torch.cat([h[-1], x[:, n_seq:]], dim=1)).squeeze(-1)


class NeuralCandidate(NetworkCandidate):
    """An ``ann`` or ``lstm`` on the network features (see the module docstring)."""

    def __init__(
        self,
        config: ModelConfig,
        field: str,
        architecture: Architecture | str,
        epochs: int = 40,
        batch_size: int = 256,
        learning_rate: float = 1e-3,
        seed: int = 7,
    ) -> None:
        super().__init__(config, field)
        self.architecture = Architecture(architecture)
        if self.architecture not in (Architecture.ANN, Architecture.LSTM):
            raise ValueError(f"{architecture} is not a neural architecture")
        self.algorithm = str(self.architecture)
        self.epochs, self.batch_size = epochs, batch_size
        self.learning_rate, self.seed = learning_rate, seed
        self.net: nn.Module | None = None
        self.x_mean = self.x_std = None
        self.y_mean, self.y_std = 0.0, 1.0

    def _x(self, rows: pd.DataFrame) -> torch.Tensor:
        x = (rows[self.features].to_numpy(float) - self.x_mean) / self.x_std
        return torch.tensor(x, dtype=torch.float32)

    def fit(self, train: pd.DataFrame) -> NeuralCandidate:
        torch.manual_seed(self.seed)
        torch.set_num_threads(1)
        raw = train[self.features].to_numpy(float)
        self.x_mean = raw.mean(axis=0)
        self.x_std = np.where(raw.std(axis=0) > 0, raw.std(axis=0), 1.0)
        residual = (train[self.field] - train["last"]).to_numpy(float)
        self.y_mean, self.y_std = float(residual.mean()), float(residual.std() or 1.0)
        x = self._x(train)
        y = torch.tensor((residual - self.y_mean) / self.y_std, dtype=torch.float32)
        hidden = self.config.hidden_size
        if self.architecture == Architecture.ANN:
            self.net = _MLP(x.shape[1], hidden)
        else:
            per_step = 2 * len(self.config.input_fields)
            self.net = _LSTM(self.config.lookback_steps, per_step, 2, hidden)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.learning_rate)
        loss_fn = nn.HuberLoss()
        generator = torch.Generator().manual_seed(self.seed)
        self.net.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(y), generator=generator)
            for start in range(0, len(y), self.batch_size):
                batch = order[start : start + self.batch_size]
                optimizer.zero_grad()
                loss = loss_fn(self.net(x[batch]), y[batch])
                loss.backward()
                optimizer.step()
        self.net.eval()
        return self

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        if self.net is None:
            raise RuntimeError(f"{self.algorithm}.predict before fit")
        with torch.no_grad():
            out = self.net(self._x(rows)).numpy().astype(float)
        return self._clip(rows["last"].to_numpy(float) + out * self.y_std + self.y_mean)
