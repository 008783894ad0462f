package main

import "github.com/mpgo/mpgo/core/pipe"

// The control block of a Pipe() (mpgo/connection.py reads it through these).
func init() {
	areas = append(areas, area{order: 15, title: "core/pipe/control.go: the control block of a Pipe()", python: true, items: []constant{
		{"PIPE_CTL_ARMED", pipe.CtlArmed, "2 x u32: waiters on each side's doorbell"},
		{"PIPE_CTL_LEVEL", pipe.CtlLevel, "2 x u32: each side's doorbell is in level mode"},
		{"PIPE_CTL_ALIVE", pipe.CtlAlive, "semaphores: open copies of each side's end"},
		{"PIPE_CTL_ALIVE_SIZE", pipe.CtlAliveSize, "bytes of one of those semaphores"},
		{"PIPE_CTL_LOCK", pipe.CtlLock, "lock: the doorbells' state"},
		{"PIPE_CTL_FULL", pipe.CtlFull, "2 x u32: level mode, the doorbell holds its byte"},
		{"PIPE_CTL_SIZE", pipe.CtlSize, "bytes of the control block"},
	}})
}
