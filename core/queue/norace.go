//go:build !race

package queue

func raceAcquire() {}
func raceRelease() {}
