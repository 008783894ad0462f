#!/usr/bin/env python3
"""mpgo's cluster Pool against Dask used directly, and Ray's Pool.

usage: python bench/cluster.py [-r REPEATS]

One run, on one cluster: a scheduler and 2 workers of one thread each,
each its own process, on loopback (tests/_cluster.py starts them). Each
case runs REPEATS times (default 5), the implementations taking turns
within each round, each run a second after the last (the scheduler
forgets the last run's tasks); the table keeps each one's best time, and
gives mpgo's speed relative to the others (> 1: mpgo is
faster).

  tiny_map        10,000 tiny tasks (x + 1): mpgo's Pool().map, chunked as
                  CPython chunks (4 chunks per pool process), against
                  client.gather(client.map(...)), one Dask task each, and
                  Ray's Pool().map
  sleep_map       100 tasks of 10 ms: the same three
  tiny_apply      10,000 apply_async() calls, then every get(), against as
                  many client.submit() calls and one client.gather()

Ray's column is there when `ray` imports; its Pool runs on a local Ray
instance of 2 CPUs (ray.init(num_cpus=2)), its own cluster.
"""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'python'))


def inc(x):
    return x + 1


def nap(x):
    time.sleep(0.01)
    return x


def _dask_map(client, func, n):
    return client.gather(client.map(func, range(n), pure=False))


def _dask_submit(client, func, n):
    return client.gather([client.submit(func, i, pure=False)
                          for i in range(n)])


def _apply_all(pool, func, n):
    results = [pool.apply_async(func, (i,)) for i in range(n)]
    return [r.get() for r in results]


def cases(client, mpgo_pool, ray_pool):
    '''(name, {impl: callable}, expected result).'''
    def with_ray(d, run):
        if ray_pool is not None:
            d['ray'] = run
        return d
    return [
        ('tiny_map', with_ray({
            'dask': lambda: _dask_map(client, inc, 10000),
            'mpgo': lambda: mpgo_pool.map(inc, range(10000))},
            lambda: ray_pool.map(inc, range(10000))),
         [x + 1 for x in range(10000)]),
        ('sleep_map', with_ray({
            'dask': lambda: _dask_map(client, nap, 100),
            'mpgo': lambda: mpgo_pool.map(nap, range(100))},
            lambda: ray_pool.map(nap, range(100))),
         list(range(100))),
        ('tiny_apply', with_ray({
            'dask': lambda: _dask_submit(client, inc, 10000),
            'mpgo': lambda: _apply_all(mpgo_pool, inc, 10000)},
            lambda: _apply_all(ray_pool, inc, 10000)),
         [x + 1 for x in range(10000)]),
    ]


def main(argv):
    repeats = 5
    if argv[:1] == ['-r']:
        repeats = int(argv[1])
    import logging
    import distributed
    import mpgo.cluster
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'tests'))
    from _cluster import LoopbackCluster
    cluster = LoopbackCluster(workers=2)
    client = distributed.Client(cluster.address)
    ctx = mpgo.cluster.get_context(cluster.address)
    mpgo_pool = ctx.Pool()              # cpu_count(): the 2 worker threads
    ray_pool = None
    try:
        import ray
        from ray.util.multiprocessing import Pool as RayPool
        ray.init(num_cpus=2, include_dashboard=False,
                 logging_level=logging.ERROR, log_to_driver=False)
        ray_pool = RayPool(2)
    except ImportError:
        pass
    table = cases(client, mpgo_pool, ray_pool)
    # Warm up: workers import what the tasks need, pools start.
    for name, impls, expected in table:
        for impl, run in impls.items():
            assert run() == expected, (name, impl)
    best = {}
    for _ in range(repeats):
        for name, impls, expected in table:
            for impl, run in impls.items():
                # Let the scheduler forget the last run's tasks first.
                time.sleep(1)
                t = time.perf_counter()
                result = run()
                elapsed = time.perf_counter() - t
                assert result == expected, (name, impl)
                key = (name, impl)
                best[key] = min(best.get(key, elapsed), elapsed)
    mpgo_pool.terminate()
    ctx.shutdown()
    client.close()
    cluster.stop()
    impls = ['dask', 'mpgo'] + (['ray'] if ray_pool is not None else [])
    print('python %s, %d cores, 2 Dask workers x 1 thread; best '
          'of %d runs each, seconds; ratios > 1 mean mpgo is faster\n'
          % (sys.version.split()[0], os.cpu_count(), repeats))
    head = ['case'] + ['%s (s)' % i for i in impls] + \
        ['mpgo vs %s' % i for i in impls if i != 'mpgo']
    print('| ' + ' | '.join(head) + ' |')
    print('|' + ' --- |' * len(head))
    for name, _, _ in table:
        row = [name] + ['%.4g' % best[name, i] for i in impls]
        row += ['%.2f\u00d7' % (best[name, i] / best[name, 'mpgo'])
                for i in impls if i != 'mpgo']
        print('| ' + ' | '.join(row) + ' |')
    if ray_pool is None:
        print('\n(ray is not installed: no Ray column)')


if __name__ == '__main__':
    main(sys.argv[1:])
