"""Windows only, as CPython's module of this name, which imports msvcrt and
_winapi: mpgo runs on Linux, where importing it fails the same way."""

__all__ = ['Popen']

raise ImportError('multiprocessing.popen_spawn_win32 is for Windows; '
                  'mpgo runs on Linux')
