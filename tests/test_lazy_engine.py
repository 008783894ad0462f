"""The Go runtime starts in a child only when the child first enters Go
(capi/lazy.c): reading a Value or taking an uncontended Lock is C alone."""
import pytest

import mpgo
from mpgo import _engine

import _lazy_helpers as lz
from _helpers import read_result

METHODS = ["fork", "spawn", "forkserver"]


def run(ctx, target, *args):
    p = ctx.Process(target=target, args=args)
    p.start()
    p.join(60)
    assert p.exitcode == 0


def test_the_main_process_starts_it_at_once():
    assert _engine.fast.started()


@pytest.mark.parametrize("method", METHODS)
def test_a_child_using_values_and_locks_never_starts_go(method, tmp_path):
    ctx = mpgo.get_context(method)
    value = ctx.Value("i", 41)
    array = ctx.Array("d", 3)
    out = str(tmp_path / "out")
    run(ctx, lz.use_shared, out, value, array, ctx.Lock(), ctx.RLock(), ctx.Semaphore(2))
    seen = read_result(out)
    assert (seen["value"], seen["array"]) == (42, [2.5, 1.0, 2.0])
    assert (value.value, array[:]) == (42, [2.5, 1.0, 2.0])
    assert not seen["started"]
    assert seen["go_threads"] == 0


@pytest.mark.parametrize("method", METHODS)
def test_a_child_starts_go_when_it_first_needs_it(method, tmp_path):
    ctx = mpgo.get_context(method)
    lock = ctx.Lock()
    out = str(tmp_path / "out")
    with lock:
        run(ctx, lz.contend, out, lock)
    seen = read_result(out)
    assert seen["got"] is False
    assert seen["item"] == "through Go"
    assert seen["started"]
    assert seen["go_threads"] > 0


@pytest.mark.parametrize("method", METHODS)
def test_memory_mapped_without_go_is_passed_on(method, tmp_path):
    ctx = mpgo.get_context(method)
    value = ctx.Value("i", 1)
    out = str(tmp_path / "out")
    run(ctx, lz.pass_on, out, value, method)
    seen = read_result(out)
    assert (seen["exitcode"], seen["value"], value.value) == (0, 2, 2)
    # 'spawn' starts its fresh interpreters through the engine.
    assert seen["started"] == (method == "spawn")
