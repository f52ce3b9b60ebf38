"""A bare Faust loop that only deserializes (the ceiling the Millrace worker is compared to).

Run as ``python benchmarks/bare_faust.py BOOTSTRAP TOPIC N OUT.json``: consumes N messages with
``stream.take`` + orjson and writes {"events", "seconds", "cpu_seconds"} measured from the first
to the Nth (CPU: this process, all its threads); the caller then stops it.
"""

import sys
import time

import faust
import orjson

bootstrap, topic_name, total, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
app = faust.App(
    "bare-faust-bench",
    broker=f"kafka://{bootstrap}",
    store="memory://",
    web_enabled=False,
    autodiscover=False,
    broker_session_timeout=4,
    broker_rebalance_timeout=4,
    broker_heartbeat_interval=1,
    consumer_auto_offset_reset="earliest",
)
topic = app.topic(topic_name, value_serializer="raw", key_serializer="raw")
seen = {"n": 0, "t0": 0.0, "cpu0": 0.0}


@app.agent(topic)
async def count(stream):  # noqa: ANN001
    async for values in stream.take(500, within=0.2):
        if seen["n"] == 0:
            seen["t0"], seen["cpu0"] = time.perf_counter(), time.process_time()
        for value in values:
            orjson.loads(value)
        seen["n"] += len(values)
        if seen["n"] >= total:
            with open(out, "wb") as fh:
                fh.write(
                    orjson.dumps(
                        {
                            "events": seen["n"],
                            "seconds": time.perf_counter() - seen["t0"],
                            "cpu_seconds": time.process_time() - seen["cpu0"],
                        }
                    )
                )


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "-l", "warn"]
    app.main()
