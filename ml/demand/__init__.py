"""The vehicle demand domain, whole: the Domain (``domain``), its vocabulary (``segments``: the
segment, the fallback levels, forecast points, what a contract counts), the feature definition
(``features``), the online forecaster (``online``), monthly books (``months``), the partition
processor (``processor``), the batch candidates and trainer (``candidates``, ``training``) and the
forecast book the API serves (``forecast``).

Pure Python (no faust, fastapi; sqlalchemy only through ``ml.registry``): the stream, trainer and
API are adapters over it. Import the submodules directly; this package imports nothing heavy on
its own.
"""

__all__: list[str] = []
