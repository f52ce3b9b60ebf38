"""Demand domain stream logic: monthly books closed by event time, and the per-partition
processor that feeds closed months to the online forecaster, drift monitors and triggers."""
