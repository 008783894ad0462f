package pool

// The wire format's header sizes and offsets, exported for drivers outside
// Go, which tools/gen writes them out for (capi/include/mpgo_consts.h and
// python/mpgo/_consts.py). The layouts are written above the unexported
// offsets they name in wire.go.
const (
	TaskIDOff        = taskID
	TaskNameLenOff   = taskNameLen
	TaskHeaderSize   = taskName // a task message's bytes before the name
	ResultIDOff      = resultID
	ResultSlotOff    = resultSlot
	ResultStatusOff  = resultStatus
	ResultHeaderSize = resultBody // a result message's bytes before the body
)
