package main

import "github.com/mpgo/mpgo/core/process"

func init() {
	areas = append(areas, area{order: 10, title: "core/process/zygote.go: the zygote's wire protocol", python: true, items: []constant{
		{"ZYGOTE_MAGIC", process.ZygoteMagic, "first word of a request; names the version"},
		{"ZYGOTE_HEADER_SIZE", process.ZygoteHeaderSize, "bytes before the environment block"},
		{"ZYGOTE_DAEMON", process.ZygoteDaemon, "flag: the child dies with its parent"},
		{"ZYGOTE_IMPORT", process.ZygoteImport, "flag: import the modules named, fork nothing"},
		{"ZYGOTE_WHEN_IDLE", process.ZygoteWhenIdle, "flag (with ZYGOTE_IMPORT): import once idle"},
		{"ZYGOTE_MAX_FDS", process.ZygoteMaxFDs, "most child fds in one request"},
		{"ZYGOTE_MAX_MESSAGE", process.ZygoteMaxMessage, "largest request"},
		{"ZYGOTE_REPLY_SIZE", process.ZygoteReplySize, "bytes of the reply (int64 pid or -errno)"},
	}})
}
