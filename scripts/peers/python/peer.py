#!/usr/bin/env python3
"""Python peer for the GreenThreads `generator` benchmark.

Measures nanoseconds per resume of a suspended coroutine that yields an int:
  python-gen  a plain generator driven by `send(None)`: one send is one
              resume (switch in, yield the next int, switch back out)
  greenlet    a greenlet that hands ints back to its parent: one
              `child.switch()` in plus the child's `parent.switch(i)` out is
              one resume, the same round trip as a generator resume

10^6 resumes per run (Python is slow; gt-bench does 10^7). One untimed
warm-up run, then REPEATS timed runs (default 5); the median is reported.
The benchmark is single-threaded, so only workers=1 is reported.

Usage: peer.py [generator] [--workers 1,2]
Prints: RESULT peer=<python-gen|greenlet> benchmark=generator workers=1 value=<median> unit=ns/resume
"""
import os
import statistics
import sys
import time

RESUMES = 1_000_000
EXPECTED = RESUMES * (RESUMES + 1) // 2  # the values 1...RESUMES


def bench_generator():
    def counter():
        i = 0
        while True:
            yield i
            i += 1

    gen = counter()
    next(gen)  # start: run to the first yield (value 0, not counted)
    send = gen.send
    sink = 0
    start = time.perf_counter_ns()
    for _ in range(RESUMES):
        sink += send(None)
    elapsed = time.perf_counter_ns() - start
    if sink != EXPECTED:
        sys.exit("generator: wrong sum")
    return elapsed / RESUMES


def bench_greenlet():
    import greenlet

    main = greenlet.getcurrent()

    def counter():
        i = 0
        while True:
            main.switch(i)
            i += 1

    child = greenlet.greenlet(counter)
    child.switch()  # start: run to the first switch back (value 0, not counted)
    switch = child.switch
    sink = 0
    start = time.perf_counter_ns()
    for _ in range(RESUMES):
        sink += switch()
    elapsed = time.perf_counter_ns() - start
    if sink != EXPECTED:
        sys.exit("greenlet: wrong sum")
    child.throw(greenlet.GreenletExit)  # let it finish rather than leak it
    return elapsed / RESUMES


def median_of(run, repeats):
    run()  # warm-up
    return statistics.median(run() for _ in range(repeats))


def main(argv):
    repeats = 5
    try:
        repeats = max(1, int(os.environ.get("REPEATS", "5")))
    except ValueError:
        pass
    workers = [1, 2]
    names = []
    args = iter(argv)
    for a in args:
        if a == "--workers":
            try:
                workers = [int(w) for w in next(args).split(",")]
            except (StopIteration, ValueError):
                sys.exit("bad worker list")
        elif a == "generator":
            names.append(a)
        else:
            print("usage: peer.py [generator] [--workers 1,2]", file=sys.stderr)
            return 2
    names = names or ["generator"]
    if 1 not in workers:
        return 0  # single-threaded benchmark: nothing to report
    status = 0
    for peer, run in (("python-gen", bench_generator), ("greenlet", bench_greenlet)):
        try:
            value = median_of(run, repeats)
        except ImportError as e:
            print(f"python-peer: {peer}: {e}", file=sys.stderr)
            status = 1
            continue
        print(f"RESULT peer={peer} benchmark=generator workers=1 value={value:.3f} unit=ns/resume",
              flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
