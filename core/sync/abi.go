package sync

// The layouts' offsets and the kinds of primitive, exported for the C fast
// path, which tools/gen writes them out for (capi/include/mpgo_consts.h).
// The layouts are written above the unexported offsets they name.
const (
	LockStateOff   = lockState
	LockPidOff     = lockPid
	LockTidOff     = lockTid
	LockCountOff   = lockCount
	SemValueOff    = semValue
	SemMaxOff      = semMax
	SemSleepersOff = semSleepers
	// SemValueMax is the largest semaphore value, SEM_VALUE_MAX on Linux.
	SemValueMax = semValueMax
)

// Kind names a primitive to the C ABI (mpgo_sync_init, mpgo_lock_acquire).
const (
	KindLock      = 0
	KindRLock     = 1
	KindSemaphore = 2
)
