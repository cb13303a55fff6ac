#!/usr/bin/env python3
"""Websocket echo server and load client for bench/run.sh --websocket.

    ws.py server --port 18089                     # echo every message back (asyncio, one process)
    ws.py probe  --url ws://127.0.0.1:18082/ws/echo
    ws.py client --url ws://... --connections 50 --duration 10 --size 32

The client opens N connections; each sends one message, waits for the echo, and repeats until the
duration is over (closed loop, like wrk). It prints one line: "msgs_per_s p50_ms p99_ms errors".
Both sides are pure Python (the `websockets` package, asyncio): on one CPU they top out at a few
thousand round trips per second, so measure the client's own ceiling (client straight to the echo
server) next to the proxies; run.sh does that in its "direct" row.
"""
import argparse
import asyncio
import sys
import time

try:
    import websockets
except ImportError:  # pragma: no cover - a setup problem, said plainly
    sys.exit("ws.py needs the Python 'websockets' package: pip install websockets")


async def serve(port: int) -> None:
    async def echo(ws):
        try:
            async for msg in ws:
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass

    async with websockets.serve(echo, "127.0.0.1", port, compression=None, max_queue=None, ping_interval=None):
        await asyncio.Future()


async def probe(url: str) -> None:
    async with websockets.connect(url, compression=None, open_timeout=5) as ws:
        await ws.send("probe")
        got = await asyncio.wait_for(ws.recv(), 5)
        if got != "probe":
            sys.exit(f"echo mismatch: sent 'probe', got {got!r}")


async def client(url: str, connections: int, duration: float, size: int) -> None:
    payload = "x" * size
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def one() -> None:
        nonlocal errors
        try:
            async with websockets.connect(url, compression=None, open_timeout=10, ping_interval=None) as ws:
                while True:
                    t0 = time.perf_counter()
                    if t0 >= deadline:
                        break
                    await ws.send(payload)
                    got = await ws.recv()
                    t1 = time.perf_counter()
                    if got != payload:
                        errors += 1
                    else:
                        latencies.append(t1 - t0)
        except (OSError, websockets.WebSocketException, asyncio.TimeoutError):
            errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(connections)))
    elapsed = max(time.perf_counter() - start, 1e-9)
    latencies.sort()
    n = len(latencies)
    if n == 0:
        print(f"0 0 0 {errors or connections}")
        return
    p50 = latencies[min(n - 1, int(n * 0.50))] * 1000
    p99 = latencies[min(n - 1, int(n * 0.99))] * 1000
    print(f"{n / elapsed:.0f} {p50:.3f} {p99:.3f} {errors}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("server")
    s.add_argument("--port", type=int, required=True)
    p = sub.add_parser("probe")
    p.add_argument("--url", required=True)
    c = sub.add_parser("client")
    c.add_argument("--url", required=True)
    c.add_argument("--connections", type=int, default=50)
    c.add_argument("--duration", type=float, default=10.0)
    c.add_argument("--size", type=int, default=32)
    a = ap.parse_args()
    if a.cmd == "server":
        asyncio.run(serve(a.port))
    elif a.cmd == "probe":
        asyncio.run(probe(a.url))
    else:
        asyncio.run(client(a.url, a.connections, a.duration, a.size))


if __name__ == "__main__":
    main()
