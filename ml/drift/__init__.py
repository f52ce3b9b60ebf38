"""Domain-free drift and change detection.

* :mod:`ml.drift.monitor`: :class:`DriftMonitor`, the per-scope drift state (input shift,
  error drift via River's ADWIN / Page-Hinkley, latency).
* :mod:`ml.drift.detectors`: online change detectors on one univariate series (level: CUSUM
  on robustly standardised values; scale: CUSUM on their squares) and
  :class:`ChangeDetector`, the suite that runs them with one re-arm rule.
* :mod:`ml.drift.bocpd`: Bayesian online change-point detection with a truncated run length.
* :mod:`ml.drift.scoring`: the TCPDBench scores (F1 with a margin, segmentation cover).
"""

from ml.drift.detectors import (
    LevelShiftDetector,
    OnlineDetector,
    RobustReference,
    VarianceShiftDetector,
)
from ml.drift.monitor import (
    DEFAULT_ADWIN_PARAMS,
    DEFAULT_PAGE_HINKLEY_PARAMS,
    MIN_REFERENCE_N,
    Detection,
    DriftMonitor,
    Reference,
    ReferenceStats,
    critical_z,
)
from ml.drift.segment import SegmentChangeDetector
from ml.drift.suite import ChangeDetector, ChangePoint, default_detectors

__all__ = [
    "ChangeDetector",
    "ChangePoint",
    "LevelShiftDetector",
    "OnlineDetector",
    "RobustReference",
    "SegmentChangeDetector",
    "VarianceShiftDetector",
    "default_detectors",
    "DEFAULT_ADWIN_PARAMS",
    "DEFAULT_PAGE_HINKLEY_PARAMS",
    "MIN_REFERENCE_N",
    "Detection",
    "DriftMonitor",
    "ReferenceStats",
    "Reference",
    "critical_z",
]
