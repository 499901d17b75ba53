#!/usr/bin/env python3
"""Floods a receiver on loopback and reads its resident memory.

Usage: scripts/flood.py PORT PID [--connections N] [--trickle-seconds S]

Sends, to http://127.0.0.1:PORT/webhooks/intercom, while valid signed
notifications keep being posted one at a time on fresh connections:

1. oversized: N concurrent requests announcing a Content-Length far above
   the limit (1 GiB), each followed by 16 KiB of body. They must be refused
   (413) before the body is read: memory must not move.
2. trickle: N concurrent chunked bodies that send 1 KiB every 100 ms and
   never end, for S seconds. Memory must follow the bytes received.
3. slow: the same, but announcing a Content-Length just under the limit
   (1,000,000 bytes) and sending the body 1 KiB every 100 ms. Memory must
   follow the bytes received, not the length announced.

Reads PID's VmRSS and VmHWM (peak, reset before each phase through
/proc/PID/clear_refs) and prints the figures. The secret comes from
INTERCOM_WEBHOOK_SECRET. Bounded in time; touches only 127.0.0.1.
"""
import argparse
import asyncio
import collections
import hashlib
import hmac
import json
import os
import time

HOST = "127.0.0.1"
PATH = "/webhooks/intercom"
ANNOUNCED = 1 << 30
CHUNK = 1024
CHUNK_EVERY = 0.1
SLOW_LENGTH = 1_000_000


def kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def reset_peak(pid):
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def ping(secret, n):
    body = json.dumps({
        "type": "notification_event", "app_id": "abc123", "id": f"notif_flood_{n}",
        "topic": "ping", "data": {"type": "notification_event_data",
                                  "item": {"type": "ping", "message": "still there?"}},
        "links": {}, "delivery_status": "pending", "delivery_attempts": 1,
        "delivered_at": 0, "first_sent_at": 1700000000, "created_at": 1700000000, "self": None,
    }, separators=(",", ":")).encode()
    signature = "sha1=" + hmac.new(secret, body, hashlib.sha1).hexdigest()
    return body, signature


async def status_of(reader, timeout):
    line = await asyncio.wait_for(reader.readline(), timeout)
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


async def valid_sender(port, secret, stop, statuses):
    """Posts one valid signed notification at a time until `stop` is set."""
    n = 0
    while not stop.is_set():
        n += 1
        body, signature = ping(secret, n)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 5)
            writer.write((f"POST {PATH} HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\n"
                          f"x-hub-signature: {signature}\r\ncontent-length: {len(body)}\r\n"
                          "connection: close\r\n\r\n").encode() + body)
            await writer.drain()
            statuses[await status_of(reader, 10)] += 1
            writer.close()
        except (OSError, asyncio.TimeoutError):
            statuses["error"] += 1
        await asyncio.sleep(0.05)


async def oversized(port, statuses):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 10)
        writer.write((f"POST {PATH} HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\n"
                      f"x-hub-signature: sha1={'0' * 40}\r\ncontent-length: {ANNOUNCED}\r\n\r\n").encode()
                     + b"x" * (16 << 10))
        await writer.drain()
        statuses[await status_of(reader, 10)] += 1
        writer.close()
    except (OSError, asyncio.TimeoutError):
        statuses["error"] += 1


async def trickle(port, until, sent, statuses, announce=None):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 10)
        framing = (f"content-length: {announce}" if announce else "transfer-encoding: chunked")
        writer.write((f"POST {PATH} HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\n"
                      f"x-hub-signature: sha1={'0' * 40}\r\n{framing}\r\n\r\n").encode())
        if announce:
            chunk = b"x" * CHUNK
        else:
            chunk = f"{CHUNK:x}\r\n".encode() + b"x" * CHUNK + b"\r\n"
        answered = asyncio.ensure_future(status_of(reader, until - time.monotonic() + 1))
        while time.monotonic() < until and not answered.done():
            writer.write(chunk)
            await writer.drain()
            sent[0] += CHUNK
            await asyncio.sleep(CHUNK_EVERY)
        if answered.done():
            statuses[answered.result()] += 1
        else:
            answered.cancel()
            statuses["still reading"] += 1
        return writer
    except (OSError, asyncio.TimeoutError):
        statuses["error"] += 1
        return None


def show(statuses):
    return ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=lambda kv: str(kv[0])))


async def phase(name, pid, port, secret, work):
    stop = asyncio.Event()
    valid = collections.Counter()
    sender = asyncio.ensure_future(valid_sender(port, secret, stop, valid))
    await asyncio.sleep(0.3)
    reset_peak(pid)
    before = kib(pid, "VmRSS")
    extra = await work()
    during = kib(pid, "VmRSS")
    peak = kib(pid, "VmHWM")
    stop.set()
    await sender
    return before, during, peak, valid, extra


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("pid", type=int)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--trickle-seconds", type=float, default=6.0)
    args = parser.parse_args()
    secret = os.environ["INTERCOM_WEBHOOK_SECRET"].encode()
    n, pid, port = args.connections, args.pid, args.port

    # Warm up: the allocator and the runtime reach their resting size.
    warm = collections.Counter()
    stop = asyncio.Event()
    task = asyncio.ensure_future(valid_sender(port, secret, stop, warm))
    await asyncio.sleep(1.0)
    stop.set()
    await task
    print(f"  resting: {kib(pid, 'VmRSS') / 1024:.1f} MiB resident; warm-up valid requests: {show(warm)}")

    refused = collections.Counter()

    async def flood_oversized():
        await asyncio.gather(*(oversized(port, refused) for _ in range(n)))

    before, during, peak, valid, _ = await phase("oversized", pid, port, secret, flood_oversized)
    print(f"  {n} x Content-Length {ANNOUNCED >> 20} MiB: answers {show(refused)}")
    print(f"    resident {before / 1024:.1f} MiB before, peak {peak / 1024:.1f} MiB "
          f"(+{(peak - before) / 1024:.1f} MiB, {(peak - before) * 1024 / n:.0f} bytes per request); "
          f"valid requests meanwhile: {show(valid)}")

    for announce in (None, SLOW_LENGTH):
        answers = collections.Counter()
        sent = [0]

        async def flood_trickle():
            until = time.monotonic() + args.trickle_seconds
            writers = await asyncio.gather(
                *(trickle(port, until, sent, answers, announce) for _ in range(n)))
            await asyncio.sleep(0.2)
            return writers

        before, during, peak, valid, writers = await phase("trickle", pid, port, secret, flood_trickle)
        received = sent[0] / 1024
        framing = f"Content-Length {announce}" if announce else "chunked"
        print(f"  {n} x {framing} body, {CHUNK} bytes every {CHUNK_EVERY * 1000:.0f} ms, never ending, "
              f"{args.trickle_seconds:.0f} s: {show(answers)}")
        print(f"    bytes sent {received / 1024:.1f} MiB; resident {before / 1024:.1f} MiB before, "
              f"{during / 1024:.1f} MiB at the end (+{(during - before) / 1024:.1f} MiB = "
              f"{(during - before) / max(received, 1):.2f} x the bytes sent), peak {peak / 1024:.1f} MiB; "
              f"valid requests meanwhile: {show(valid)}")
        for writer in writers:
            if writer is not None:
                writer.close()
        await asyncio.sleep(1.0)
        print(f"  after the connections close: {kib(pid, 'VmRSS') / 1024:.1f} MiB resident")


if __name__ == "__main__":
    asyncio.run(main())
