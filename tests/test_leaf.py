"""Tests of mpgo._leaf: whether a child's target can start processes.

A "no" lets the child skip forking a zygote of its own; it must never be
said of a target that can start one (the child would pay for a fresh
zygote), so every way of reaching a start is tried here.
"""

import functools
import os
import time

import pytest

import mpgo
from mpgo import _leaf

import _helpers


def _no_process(target, *args, **kwargs):
    return _leaf.starts_no_process(mpgo.Process(target=target, args=args,
                                                kwargs=kwargs))


def bump(v):
    v.value += 1
    print('bumped', v.value, os.getpid())
    time.sleep(0)


def helper_sum(xs):
    return sum(x * x for x in xs)


def calls_helper(xs, q):
    q.put(helper_sum(xs))


def starts(v):
    p = mpgo.Process(target=bump, args=(v,))
    p.start()


def calls_a_starter():
    starts(None)


def makes_a_pool(xs):
    with mpgo.Pool(2) as p:
        return p.map(abs, xs)


def imports_mpgo():
    import multiprocessing
    return multiprocessing


def calls_a_method(obj):
    obj.work()


def uses_numpy_like(np):
    return np.sum([1])


class _Runner:
    def work(self):
        pass


def test_plain_targets_start_nothing():
    v = mpgo.Value('i', 0)
    assert _no_process(bump, v)
    assert _no_process(calls_helper, [1, 2], mpgo.Queue())
    assert _no_process(helper_sum, xs=(1, 2))
    # seed 002's queue tutorial passes a range
    assert _no_process(calls_helper, range(1, 6), mpgo.Queue())
    assert _no_process(helper_sum, bytearray(b'ab'))
    assert _no_process(lambda: None)
    assert _leaf.starts_no_process(mpgo.Process())


@pytest.mark.parametrize('target,args', [
    (starts, (None,)),
    (calls_a_starter, ()),
    (makes_a_pool, ([1],)),
    (imports_mpgo, ()),
    (calls_a_method, (_Runner(),)),         # a program's object: unseen
    (uses_numpy_like, (os,)),               # a module as an argument
    (functools.partial(bump, None), ()),    # not a plain function
    (_helpers.start_grandchild, ('p',)),    # through another module
    (print, ()),                            # a builtin
])
def test_what_may_start_a_process(target, args):
    assert not _no_process(target, *args)


def test_a_closure_over_a_starter():
    pool = mpgo.Pool
    def f():
        return pool
    assert not _no_process(f)


def test_a_subclass_run_is_not_looked_into():
    class P(mpgo.Process):
        def run(self):
            pass
    assert not _leaf.starts_no_process(P())
