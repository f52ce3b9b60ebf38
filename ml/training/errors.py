"""Why a training job cannot run: the message is recorded on the job and shown to clients."""

__all__ = ["TrainingDataError"]


class TrainingDataError(ValueError):
    """The requested training data is unusable (bad range, too little history, none at all)."""
