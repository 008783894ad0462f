package queue_test

import (
	"testing"
	"time"
)

// BenchmarkPutGet puts and gets one small message at a time in one
// goroutine: the cost of a lock hold, a commit and a copy each way.
func BenchmarkPutGet(b *testing.B) {
	q := newQueue(b, 0, 1<<20)
	msg, buf := make([]byte, 64), make([]byte, 64)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := q.Put(msg, 0); err != nil {
			b.Fatal(err)
		}
		if _, err := q.Get(buf, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkSPSC streams small messages from a producer goroutine to a
// consumer goroutine through a bounded queue, so both sides sleep and wake.
func BenchmarkSPSC(b *testing.B) {
	for _, c := range []struct {
		name    string
		maxsize int
	}{{"unbounded", 0}, {"bounded", 1024}} {
		b.Run(c.name, func(b *testing.B) {
			q := newQueue(b, c.maxsize, 1<<20)
			msg := make([]byte, 64)
			b.SetBytes(int64(len(msg)))
			done := make(chan error, 1)
			b.ResetTimer()
			go func() {
				buf := make([]byte, 64)
				for range b.N {
					if _, err := q.Get(buf, 10*time.Second); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			for range b.N {
				if err := q.Put(msg, 10*time.Second); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

// BenchmarkBatch moves small messages 64 at a time with PutMany and
// GetMany, one lock hold per batch.
func BenchmarkBatch(b *testing.B) {
	q := newQueue(b, 0, 1<<20)
	msgs := make([][]byte, 64)
	for i := range msgs {
		msgs[i] = make([]byte, 64)
	}
	buf := make([]byte, 64*64)
	b.SetBytes(64 * 64)
	for b.Loop() {
		if _, err := q.PutMany(msgs, 0); err != nil {
			b.Fatal(err)
		}
		if lens, err := q.GetMany(buf, 64, 0); err != nil || len(lens) != 64 {
			b.Fatal(len(lens), err)
		}
	}
	b.ReportMetric(float64(b.N*64)/b.Elapsed().Seconds(), "msgs/s")
}
