package pool

// FakeClaim stores in slot i a claim of task id at a queue position no get
// has reached, as if its worker had died inside its take, after the claim
// and before the take committed: the task is still queued.
func FakeClaim(p *Pool, i int, id uint64) {
	s := slotAt(p.slots.Bytes(), i)
	s.pos.Store(1 << 62)
	s.task.Store(id)
}

// LastID returns the id of the last task submitted.
func LastID(p *Pool) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastID
}
