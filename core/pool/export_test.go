package pool

// LoseHandoff makes a pending task that counts as taken from the task queue
// but is in no slot, as if a worker had died between its Get and its slot
// store: the state a sweep must settle.
func LoseHandoff(p *Pool) *Future {
	f := &Future{name: "lost", done: make(chan struct{})}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastID++
	p.pending[p.lastID] = f
	return f
}
