"""The network domain's models: per-field model configs, window features, online River models,
the partition processor and its drift detectors (``drift.py``), the batch trainer, best-model
election and the monitoring state machine.

Pure Python (no faust, fastapi or sqlalchemy): the stream, trainer and API are adapters over it.
Import the submodules directly (``ml.network.configs``, ``ml.network.processor`` ...); this
package imports nothing heavy on its own.
"""

__all__: list[str] = []
