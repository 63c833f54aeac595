package transforms

import (
	"context"
	"runtime"
)

// inflight runs a bundle's work items on up to GOMAXPROCS goroutines while
// the DoFn goes on reading, each with a worker of its own (decoding and
// evaluation buffers). Prism seldom runs more than one bundle of a stage at
// once, and a Dataflow or Flink worker may be given one large restriction:
// overlapping inside the bundle is what keeps every core busy. Concurrency
// is bounded per process by the evaluation slots, and the samples read
// ahead by samplesHeld (see hold), so memory grows with cores, not with
// bundles in flight.
//
// Results are handed back on the DoFn's goroutine, the only one that may
// use the DoFn's emitters.
type inflight[W, R any] struct {
	newWorker func() W
	idle      []W // workers not working
	all       []W
	done      chan finished[W, R]
	running   int
}

// finished is a work item's result and the worker that is free again.
type finished[W, R any] struct {
	worker W
	result R
}

func newInflight[W, R any](newWorker func() W) *inflight[W, R] {
	return &inflight[W, R]{newWorker: newWorker, done: make(chan finished[W, R], runtime.GOMAXPROCS(0))}
}

// start runs work on a worker as soon as one and a slot are free, handing
// the results that arrive meanwhile to receive.
func (p *inflight[W, R]) start(ctx context.Context, work func(W) R, receive func(R)) error {
	for len(p.idle) == 0 && p.running >= cap(p.done) {
		p.receive(<-p.done, receive)
	}
	p.drain(receive)
	release, err := acquireSlot(ctx)
	if err != nil {
		return err
	}
	w := p.worker()
	p.running++
	go func() {
		defer release()
		p.done <- finished[W, R]{worker: w, result: work(w)}
	}()
	return nil
}

// hold takes a place in sem, a semaphore, handing the results that arrive
// meanwhile to receive: they may be what frees a place.
func (p *inflight[W, R]) hold(ctx context.Context, sem chan struct{}, receive func(R)) error {
	for {
		select {
		case sem <- struct{}{}:
			return nil
		case f := <-p.done:
			p.receive(f, receive)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// worker takes an idle worker, or makes one.
func (p *inflight[W, R]) worker() W {
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle = p.idle[:n-1]
		return w
	}
	w := p.newWorker()
	p.all = append(p.all, w)
	return w
}

// drain hands over the results that have arrived, without waiting.
func (p *inflight[W, R]) drain(receive func(R)) {
	for {
		select {
		case f := <-p.done:
			p.receive(f, receive)
		default:
			return
		}
	}
}

// wait hands over every result still to come.
func (p *inflight[W, R]) wait(receive func(R)) {
	for p.running > 0 {
		p.receive(<-p.done, receive)
	}
}

func (p *inflight[W, R]) receive(f finished[W, R], receive func(R)) {
	p.running--
	p.idle = append(p.idle, f.worker)
	receive(f.result)
}

// workers are every worker made so far, idle once wait has returned.
func (p *inflight[W, R]) workers() []W { return p.all }

// forget drops the workers, and with them their buffers. Only call it with
// nothing running.
func (p *inflight[W, R]) forget() { p.idle, p.all = nil, nil }
