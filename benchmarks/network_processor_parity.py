"""Parity of the network partition processor: a git ref's code against the working tree's on the
same events, every output compared exactly.

Both run the way ``network_throughput.py``'s processor-only measurement does (events split into
``--partitions`` partitions by key, ``--batch-size``-event batches, ``state()`` after every
batch), each in its own process (the ref's code is ``git archive``d to a temporary directory),
optionally restoring every ``--restore-every``-th checkpoint (``NetworkProcessor.restore``).
Compared: every batch's forecasts, scores, drift events, retrain requests and corrections, then
every processor's ``statistics()``; floats exactly (``==``), the largest relative difference
printed if any differ. Shapes: ``sparse`` (``sparse_records``), ``shift`` (the same, with a
level shift of rsrp, x3 dl_bitrate, for the even cells from window 70: drift events and
retrain requests), ``irish`` (the Irish 5G measurements by time).

    .venv/bin/python benchmarks/network_processor_parity.py --ref main --shape sparse --events 20000
    .venv/bin/python benchmarks/network_processor_parity.py --shape shift --restore-every 3

Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import pickle
import subprocess
import sys
import tempfile
import zlib
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _records(shape: str, events: int | None, cells: int, windows: int) -> list[Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from network_throughput import DATA, sparse_records

    if shape == "irish":
        from millrace.importers.irish5g import Irish5GSource

        return list(islice(Irish5GSource(DATA, by_time=True).records(), events or 100_000))
    records = sparse_records(cells, windows)
    if shape == "shift":
        start = records[0].event.occurred_at.timestamp()
        shifted = []
        for r in records:
            e = r.event
            c, t = int(e.cell_id.rsplit("-", 1)[1]), int((e.occurred_at.timestamp() - start) // 60)
            if c % 2 == 0 and t >= 70:
                rsrp = round(e.rsrp + 12 + (t % 3) * 3, 1)
                e = e.model_copy(update={"rsrp": rsrp, "dl_bitrate": e.dl_bitrate * 3})
            shifted.append(dataclasses.replace(r, event=e))
        records = shifted
    return records[:events] if events else records


def _plain(o: Any) -> Any:
    if hasattr(o, "model_dump"):
        return _plain(o.model_dump())
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return tuple(_plain(getattr(o, f.name)) for f in dataclasses.fields(o))
    if isinstance(o, dict):
        return {k: _plain(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return type(o)(_plain(v) for v in o)
    return o


def _emit(records_file: str, out_file: str, partitions: int, batch: int, restore: int) -> None:
    """Run this process's ``ml.network.processor`` over the records; pickle plain outputs."""
    from ml.network.processor import NetworkProcessor

    with open(records_file, "rb") as f:
        records = pickle.load(f)  # noqa: S301 - written by the parent process
    processors = [NetworkProcessor() for _ in range(partitions)]
    outputs, checkpoints = [], 0
    for start in range(0, len(records), batch):
        parts: dict[int, list[Any]] = {}
        for r in records[start : start + batch]:
            parts.setdefault(zlib.crc32(r.key.encode()) % partitions, []).append(r.event)
        for p, events in sorted(parts.items()):
            o = processors[p].process(events)
            state = processors[p].state()
            checkpoints += 1
            if restore and checkpoints % restore == 0:
                processors[p] = NetworkProcessor.restore(state)
            outputs.append(
                (p, *(_plain(x) for x in (o.forecasts, o.scores, o.drift_events,
                                          o.retrain_requests, o.corrections)))
            )  # fmt: skip
    result = {"batches": outputs, "statistics": [_plain(p.statistics()) for p in processors]}
    with open(out_file, "wb") as f:
        pickle.dump(result, f)


def _compare(a: Any, b: Any) -> tuple[list[Any], tuple[float, Any]]:
    """Non-float mismatches, and the largest relative float difference with its place."""
    mismatches: list[Any] = []
    worst: list[Any] = [0.0, None]

    def walk(x: Any, y: Any, path: tuple[Any, ...]) -> None:
        if isinstance(x, float) and isinstance(y, float):
            if x != y and not (math.isnan(x) and math.isnan(y)):
                d = abs(x - y) / max(abs(x), abs(y), 1e-300)
                if d > worst[0]:
                    worst[:] = [d, (path, x, y)]
        elif type(x) is not type(y):
            mismatches.append((path, x, y))
        elif isinstance(x, dict):
            if x.keys() != y.keys():
                mismatches.append((path, sorted(x), sorted(y)))
            else:
                for k in x:
                    walk(x[k], y[k], (*path, k))
        elif isinstance(x, list | tuple):
            if len(x) != len(y):
                mismatches.append((path, len(x), len(y)))
            else:
                for i, (u, v) in enumerate(zip(x, y, strict=True)):
                    walk(u, v, (*path, i))
        elif x != y:
            mismatches.append((path, x, y))

    walk(a, b, ())
    return mismatches, (worst[0], worst[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="main", help="git ref of the code to compare with")
    parser.add_argument("--shape", choices=("sparse", "shift", "irish"), default="sparse")
    parser.add_argument("--events", type=int, default=None, help="first N events")
    parser.add_argument("--cells", type=int, default=800)
    parser.add_argument("--windows", type=int, default=120)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--restore-every", type=int, default=0, help="restore every K-th state")
    parser.add_argument("--emit", nargs=2, metavar=("RECORDS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.emit:
        _emit(*args.emit, args.partitions, args.batch_size, args.restore_every)
        return
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "ref"
        old.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.ref], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        records = Path(tmp) / "records.pkl"
        with open(records, "wb") as f:
            pickle.dump(_records(args.shape, args.events, args.cells, args.windows), f)
        results = []
        for code in (old, ROOT):
            out = Path(tmp) / f"{code.name}.out"
            subprocess.run(
                [sys.executable, __file__, "--emit", str(records), str(out),
                 "--partitions", str(args.partitions), "--batch-size", str(args.batch_size),
                 "--restore-every", str(args.restore_every)],
                check=True, cwd=code, env={"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin"},
            )  # fmt: skip
            with open(out, "rb") as f:
                results.append(pickle.load(f))  # noqa: S301 - written by our child
    mismatches, (diff, where) = _compare(*results)
    batches = results[0]["batches"]
    counts = {
        name: sum(len(b[i]) for b in batches)
        for i, name in enumerate(("forecasts", "scores", "drift_events", "retrain_requests"), 1)
    }
    print(f"{args.shape} vs {args.ref}: {len(batches)} batches, {counts}")
    print(f"non-float mismatches: {len(mismatches)} {mismatches[:3]}")
    print(f"largest relative float difference: {diff} {where or ''}")
    if mismatches or diff:
        sys.exit(1)
    print("identical")


if __name__ == "__main__":
    main()
