"""Tests of mpgo.shared_memory: SharedMemory and ShareableList, in one
process and shared with spawned children by name and by pickling."""
import os
import pickle

import pytest

import mpgo
from mpgo import shared_memory
from mpgo.shared_memory import ShareableList, SharedMemory

import _shm_helpers as H

GUARD = 60


def _shm_path(name):
    return '/dev/shm/' + name


@pytest.fixture(autouse=True)
def _no_segment_left():
    # conftest.py only watches names containing "mpgo"; SharedMemory names
    # its blocks psm_*, as CPython does.
    before = set(os.listdir('/dev/shm'))
    yield
    leaked = {n for n in set(os.listdir('/dev/shm')) - before
              if n.startswith('psm_') or n.startswith('test_mpgo')}
    for name in leaked:
        os.unlink(_shm_path(name))
    assert not leaked, 'test left shared memory behind: %s' % sorted(leaked)


@pytest.fixture
def block():
    shm = SharedMemory(create=True, size=100)
    yield shm
    shm.close()
    try:
        shm.unlink()
    except FileNotFoundError:
        pass


def _run(target, *args):
    p = mpgo.Process(target=target, args=args)
    p.start()
    p.join(GUARD)
    if p.is_alive():
        p.kill()
        p.join()
        pytest.fail('child did not exit')
    assert p.exitcode == 0


class TestSharedMemory:
    def test_create_and_attach_by_name(self, block):
        assert block.size == 100
        assert len(block.buf) == 100
        assert block.name.startswith('psm_') and '/' not in block.name
        assert len(block.name) <= 14
        assert os.path.exists(_shm_path(block.name))
        assert repr(block) == 'SharedMemory(%r, size=100)' % block.name
        block.buf[:5] = b'hello'
        other = SharedMemory(block.name)
        try:
            assert other.size == 100
            assert bytes(other.buf[:5]) == b'hello'
            other.buf[99] = 7
            assert block.buf[99] == 7
        finally:
            other.close()

    def test_named_create(self):
        name = 'test_mpgo_%d' % os.getpid()
        shm = SharedMemory(name, create=True, size=10)
        try:
            assert shm.name == name
            with pytest.raises(FileExistsError):
                SharedMemory(name, create=True, size=10)
        finally:
            shm.close()
            shm.unlink()
        assert not os.path.exists(_shm_path(name))

    def test_argument_checks(self):
        with pytest.raises(ValueError):
            SharedMemory(create=True, size=-1)
        with pytest.raises(ValueError):
            SharedMemory(create=True, size=0)
        with pytest.raises(ValueError):
            SharedMemory()  # name is needed unless creating
        with pytest.raises(FileNotFoundError):
            SharedMemory('test_mpgo_does_not_exist')

    def test_close_and_unlink(self):
        shm = SharedMemory(create=True, size=10)
        name = shm.name
        buf = shm.buf
        shm.close()
        assert shm.buf is None
        with pytest.raises(ValueError):
            buf[0]  # the memoryview was released
        shm.close()  # idempotent
        assert os.path.exists(_shm_path(name))
        shm.unlink()
        assert not os.path.exists(_shm_path(name))
        with pytest.raises(FileNotFoundError):
            SharedMemory(name)
        with pytest.raises(FileNotFoundError):
            shm.unlink()

    def test_attach_reports_the_block_size(self):
        shm = SharedMemory(create=True, size=1)
        try:
            assert shm.size == 1
            other = SharedMemory(shm.name)
            assert other.size >= 1
            other.close()
        finally:
            shm.close()
            shm.unlink()

    def test_pickle_attaches_by_name(self, block):
        block.buf[:3] = b'abc'
        clone = pickle.loads(pickle.dumps(block))
        try:
            assert clone.name == block.name
            assert bytes(clone.buf[:3]) == b'abc'
        finally:
            clone.close()

    def test_child_attaches_by_name(self, block):
        block.buf[:5] = b'head:'
        r, w = mpgo.Pipe(False)
        p = mpgo.Process(target=H.write_by_name,
                         args=(block.name, b'from child', w))
        p.start()
        w.close()
        with r:
            assert r.poll(GUARD)
            assert r.recv() == (100, b'head:')
        p.join(GUARD)
        assert p.exitcode == 0
        assert bytes(block.buf[:15]) == b'head:from child'

    def test_child_gets_it_as_an_argument(self, block):
        _run(H.write_pickled, block, b'pickled')
        assert bytes(block.buf[:7]) == b'pickled'


class TestShareableList:
    VALUES = [1, -2 ** 62, 2.5, True, None, 'text', b'by\x00tes', '']

    def test_values_and_types(self):
        sl = ShareableList(self.VALUES)
        try:
            assert len(sl) == len(self.VALUES)
            assert list(sl) == self.VALUES
            assert [type(v) for v in sl] == [type(v) for v in self.VALUES]
            assert sl[-1] == '' and sl[-3] == 'text'
            assert sl.count(1) == 2  # 1 == True
            assert sl.index(None) == 4
            with pytest.raises(ValueError):
                sl.index('absent')
            with pytest.raises(IndexError):
                sl[len(self.VALUES)]
            with pytest.raises(IndexError):
                sl[len(self.VALUES)] = 0
            assert isinstance(sl.format, str)
            assert 'ShareableList(' in repr(sl)
        finally:
            sl.shm.close()
            sl.shm.unlink()

    def test_assignment(self):
        sl = ShareableList(['abcdef', b'xy', 3, 4.0])
        try:
            sl[0] = 'short'
            assert sl[0] == 'short'
            sl[0] = 'abcdef'  # the storage was sized for the original
            with pytest.raises(ValueError):
                sl[0] = 'x' * 100
            sl[1] = b'z'
            sl[2] = 'now a str'[:1]
            sl[3] = None
            assert list(sl) == ['abcdef', b'z', 'n', None]
        finally:
            sl.shm.close()
            sl.shm.unlink()

    def test_attach_by_name_and_pickle(self):
        sl = ShareableList([10, 'a'])
        try:
            other = ShareableList(name=sl.shm.name)
            assert list(other) == [10, 'a']
            other[0] = 11
            assert sl[0] == 11
            other.shm.close()
            clone = pickle.loads(pickle.dumps(sl))
            assert list(clone) == [11, 'a']
            clone.shm.close()
        finally:
            sl.shm.close()
            sl.shm.unlink()

    def test_empty(self):
        sl = ShareableList()
        try:
            assert len(sl) == 0
            assert list(sl) == []
        finally:
            sl.shm.close()
            sl.shm.unlink()

    def test_children_update_it(self):
        sl = ShareableList([21, 0.0, 'parent', 'x'])
        try:
            _run(H.update_list_by_name, sl.shm.name)
            _run(H.update_pickled_list, sl)
            assert list(sl) == [42, -1.5, 'child', None]
        finally:
            sl.shm.close()
            sl.shm.unlink()

    def test_generic_alias(self):
        assert ShareableList[int] is not None
