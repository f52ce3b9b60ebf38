"""Batch training: training sets from stored observations, candidates, scoring, the promotion
gate, versions and artifacts. Pure Python; the trainer process (``millrace.trainer``) adapts it
to Kafka."""
