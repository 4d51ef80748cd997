"""The Python side of the interoperability tests: drives the real dtpyfw 0.6.51.

Usage: peer.py URL COMMAND ARGS...   (one JSON document per line on stdout)

  send CHANNEL FILE             publish each {"name", "body"} line of FILE with
                                RedisStreamer.send_message
  consume CHANNEL SERVICE N SECS
                                subscribe SERVICE (from the start of the stream), run the
                                handler until N messages arrived or SECS passed (N = 0: until
                                1 s passes without a message, after the first); print one
                                {"name", "body"} line per message
  cache NAMESPACE KWARGS_JSON [skip,keys]
                                call a cache_wrapper function with the keyword arguments;
                                print {"result": ..., "computed": bool}
  cache-key NAMESPACE KWARGS_JSON
                                print the key dtpyfw derives for those keyword arguments
  cache-data NAMESPACE KWARGS_JSON VALUE_JSON
                                overwrite that key with VALUE through dtpyfw's cache_data
                                (DEL + SETEX, as its cache_wrapper writes); print {"key": ...}
"""
import json
import logging
import sys
import time

logging.disable(logging.CRITICAL)

from dtpyfw.redis.caching import _cache_key_generator, cache_data, cache_wrapper  # noqa: E402
from dtpyfw.redis.config import RedisConfig  # noqa: E402
from dtpyfw.redis.connection import RedisInstance  # noqa: E402
from dtpyfw.redis_streamer.message import Message  # noqa: E402
from dtpyfw.redis_streamer.synchronize import RedisStreamer  # noqa: E402


def out(doc):
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def main():
    url, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    redis = RedisInstance(RedisConfig().set_redis_url(url))
    if command == "send":
        channel, path = args
        streamer = RedisStreamer(redis, consumer_name="python-sender")
        with open(path, encoding="utf-8") as f:
            for line in f:
                doc = json.loads(line)
                streamer.send_message(channel, Message(name=doc["name"], body=doc["body"]))
    elif command == "consume":
        channel, service, n, secs = args[0], args[1], int(args[2]), float(args[3])
        streamer = RedisStreamer(redis, consumer_name=service)
        streamer.subscribe(channel, start_from_latest=False)
        got = [0]
        last = [None]

        def handler(name, payload):
            out({"name": name, "body": payload})
            got[0] += 1
            last[0] = time.monotonic()

        streamer.register_handler(channel, handler)
        group = streamer._group_name(channel, streamer.listener_name)
        deadline = time.monotonic() + secs
        def idle():
            return n == 0 and last[0] is not None and time.monotonic() - last[0] > 1.0

        while (n == 0 or got[0] < n) and time.monotonic() < deadline and not idle():
            # The package's own batch step (read, handle, ack), without its loop's sleeps.
            streamer._consume_one(channel, group, streamer.listener_name, 0.2, 32)
    elif command == "cache-data":
        namespace, kwargs, value = args[0], json.loads(args[1]), json.loads(args[2])
        key = _cache_key_generator(namespace, (), kwargs, set())
        cache_data(value, key, redis.get_redis_client(), expire=3600)
        out({"key": key})
    elif command in ("cache", "cache-key"):
        namespace, kwargs = args[0], json.loads(args[1])
        skip = set(args[2].split(",")) if len(args) > 2 and args[2] else None
        if command == "cache-key":
            out({"key": _cache_key_generator(namespace, (), kwargs, skip or set())})
            return
        computed = [False]

        @cache_wrapper(redis=redis, namespace=namespace, expire=3600, skip_cache_keys=skip)
        def compute(**kw):
            computed[0] = True
            return {"echo": kw, "source": "python"}

        result = compute(**kwargs)
        out({"result": result, "computed": computed[0]})
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main()
