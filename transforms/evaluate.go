package transforms

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"runtime"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/core/sdf"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/rtrackers/offsetrange"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/sample"
	"github.com/segeval/segeval/internal/shard"
	"github.com/segeval/segeval/internal/storage"
)

// Counters of the evaluation, in the "segeval" namespace: restrictions
// processed, and the partial accumulators emitted with their encoded bytes
// (what a runner without combiner lifting would shuffle).
var (
	restrictions = beam.NewCounter("segeval", "restrictions")
	partials     = beam.NewCounter("segeval", "partial_accumulators")
	partialBytes = beam.NewCounter("segeval", "partial_accumulator_bytes")
)

func init() {
	beam.RegisterType(reflect.TypeOf((*evaluateSamplesFn)(nil)).Elem())
	register.Emitter1[evaluate.Result]()
	register.Emitter1[*evaluate.Accumulator]()
	register.Emitter2[string, *evaluate.Tally]()
	register.Emitter1[results.Rejection]()
}

// Evaluated is what the evaluation produces. No per-image record leaves
// it: rows are written as parts, and each bundle sends on only its worst
// images.
type Evaluated struct {
	// Candidates holds evaluate.Result values: each bundle's worst images
	// by loss and by mIoU (at most 2 x WorstK per bundle), from which
	// WorstImages picks the run's.
	Candidates beam.PCollection
	// Partials holds *evaluate.Accumulator values, one per bundle that
	// evaluated an image.
	Partials beam.PCollection
	// Slices holds KV<string, *evaluate.Tally>: per bundle, one tally per
	// slice of its images.
	Slices beam.PCollection
	// Rejected holds a results.Rejection per sample set aside.
	Rejected beam.PCollection
	// Parts holds a results.Part per part of per_image.jsonl written.
	Parts beam.PCollection
}

// Initial splits of a shard's plan: a restriction ends once it spans
// DefaultRestrictionBytes (or EvalConfig.RestrictionBytes) or holds
// restrictionSamples samples. Runners that do not split running work
// (Flink) get their parallelism from these; Dataflow splits further as it
// goes. 64 MiB is a few Cityscapes float16 samples, a few seconds of one
// core; 1024 samples keeps a shard of tiny images from being one
// restriction.
const (
	DefaultRestrictionBytes = 64 << 20
	restrictionSamples      = 1024
)

// EvaluateSamples reads and evaluates every planned sample. It is a
// splittable DoFn over the sample indices of each ShardPlan: a restriction
// is a range of samples, read with one ranged read pinned to the generation
// matched (or, for a local shard, each sample mapped into memory, pinned
// likewise), and a runner may split it between any two samples (Dataflow's
// dynamic work rebalancing does so for stragglers). Within a bundle the
// samples are decoded and evaluated on up to GOMAXPROCS goroutines while
// the next one is read, so that a worker uses its cores whatever the shard
// layout.
func EvaluateSamples(s beam.Scope, cfg EvalConfig, plans beam.PCollection) Evaluated {
	s = s.Scope("transforms.EvaluateSamples")
	candidates, partials, slices, rejects, parts := beam.ParDo5(s, &evaluateSamplesFn{EvalConfig: cfg}, plans)
	return Evaluated{Candidates: candidates, Partials: partials, Slices: slices, Rejected: rejects, Parts: parts}
}

type evaluateSamplesFn struct {
	EvalConfig

	store   *storage.Store
	reader  *shard.SampleReader
	overlap *overlap
}

func (f *evaluateSamplesFn) CreateInitialRestriction(plan ShardPlan) offsetrange.Restriction {
	return offsetrange.Restriction{Start: 0, End: int64(len(plan.Samples))}
}

// SplitRestriction cuts a plan into restrictions of about RestrictionBytes
// each. Plans arrive cut to that size already (see PlanSamples); this only
// matters for plans made otherwise.
func (f *evaluateSamplesFn) SplitRestriction(plan ShardPlan, rest offsetrange.Restriction) []offsetrange.Restriction {
	return splitPlan(plan, rest, restrictionBytes(f.RestrictionBytes), restrictionSamples)
}

// restrictionBytes is the restriction size configured, or the default.
func restrictionBytes(configured int64) int64 {
	if configured <= 0 {
		return DefaultRestrictionBytes
	}
	return configured
}

// splitPlan cuts rest into consecutive ranges, each ending once it spans
// maxBytes or holds maxSamples samples.
func splitPlan(plan ShardPlan, rest offsetrange.Restriction, maxBytes, maxSamples int64) []offsetrange.Restriction {
	var splits []offsetrange.Restriction
	start := rest.Start
	for i := rest.Start; i < rest.End; i++ {
		if plan.Bytes(start, i+1) >= maxBytes || i+1-start >= maxSamples {
			splits = append(splits, offsetrange.Restriction{Start: start, End: i + 1})
			start = i + 1
		}
	}
	if start < rest.End {
		splits = append(splits, offsetrange.Restriction{Start: start, End: rest.End})
	}
	return splits
}

// RestrictionSize is the bytes left to read, so that a runner sees the
// backlog in the unit that costs.
func (f *evaluateSamplesFn) RestrictionSize(plan ShardPlan, rest offsetrange.Restriction) float64 {
	return float64(plan.Bytes(rest.Start, rest.End))
}

func (f *evaluateSamplesFn) CreateTracker(rest offsetrange.Restriction) *sdf.LockRTracker {
	return sdf.NewLockRTracker(offsetrange.NewTracker(rest))
}

func (f *evaluateSamplesFn) Setup() {
	f.store = storage.New(f.Storage)
	f.reader = shard.NewSampleReader("", shard.Limits{})
	f.overlap = newOverlap(f.EvalConfig)
}

func (f *evaluateSamplesFn) Teardown() error { return f.store.Close() }

func (f *evaluateSamplesFn) StartBundle(context.Context, func(evaluate.Result), func(*evaluate.Accumulator),
	func(string, *evaluate.Tally), func(results.Rejection), func(results.Part)) {
	f.overlap.reset() // a retried bundle must not carry a failed attempt's partial sums
}

func (f *evaluateSamplesFn) ProcessElement(ctx context.Context, rt *sdf.LockRTracker, plan ShardPlan, _ func(evaluate.Result),
	_ func(*evaluate.Accumulator), _ func(string, *evaluate.Tally), emitReject func(results.Rejection), emitPart func(results.Part)) error {
	rest := rt.GetRestriction().(offsetrange.Restriction)
	if rest.Start >= rest.End {
		return nil
	}
	restrictions.Inc(ctx, 1)
	out := f.overlap.emitters(ctx, f.store, emitReject, emitPart)
	decode := f.Decode
	if size := plan.Shard.Size; size > 0 {
		decode.Limits.MaxMemberBytes = min(decode.Limits.MaxMemberBytes, size)
	}
	f.reader.Reset(plan.Shard.Path, shard.Limits{MaxMemberBytes: decode.Limits.MaxMemberBytes})
	if mapSamples(plan.Shard.Path, plan.Bytes(rest.Start, rest.End)/(rest.End-rest.Start)) {
		return f.evaluateMapped(ctx, rt, plan, rest, decode, out)
	}
	return f.evaluateStreamed(ctx, rt, plan, rest, decode, out)
}

// evaluateStreamed evaluates the samples of rest read with one ranged read,
// which a Cloud Storage object needs.
func (f *evaluateSamplesFn) evaluateStreamed(ctx context.Context, rt *sdf.LockRTracker, plan ShardPlan, rest offsetrange.Restriction,
	decode sample.Options, out *emitters) error {
	sh := plan.Shard
	first := plan.Samples[rest.Start].Offset
	r, err := f.store.OpenRange(ctx, sh.Path, sh.Generation, first, plan.Bytes(rest.Start, rest.End))
	if err != nil {
		return err
	}
	defer r.Close()
	counted := &countingReader{r: r}
	pos := first
	for i := rest.Start; rt.TryClaim(i); i++ {
		span := plan.Samples[i]
		// Samples left out of the plan (duplicates, defects) lie
		// between planned ones: skip their bytes.
		if _, err := io.CopyN(io.Discard, counted, span.Offset-pos); err != nil {
			return f.fail(out, fmt.Errorf("read %s: %w", sh.Path, err))
		}
		if err := f.overlap.hold(ctx, out); err != nil {
			return f.fail(out, err)
		}
		smp, err := f.reader.Read(counted, shard.Entry{Key: span.Key, Offset: span.Offset, Length: span.Length})
		pos = span.Offset + span.Length
		if err != nil {
			unhold()
			if counted.err != nil {
				err = fmt.Errorf("read %s: %w", sh.Path, counted.err) // storage, not the shard's content
			}
			if err := out.reject(span.Key, sh.Path, err); err != nil {
				return f.fail(out, err)
			}
			continue
		}
		done := func(s *shard.Sample) { f.reader.Release(s); unhold() }
		job := job{sample: smp, shard: sh.Path, length: span.Length, generation: sh.Generation, decode: decode, done: done}
		if err := f.overlap.submit(ctx, job, out); err != nil {
			return f.fail(out, err)
		}
	}
	bytesRead.Inc(ctx, counted.n)
	return f.finishRestriction(rt, out)
}

// evaluateMapped evaluates the samples of rest, in a local shard, each
// from its span mapped into memory: their members are not copied but read
// where the page cache holds them (see storage.MapRange). A sample's
// mapping is closed once it is evaluated, when its buffers would go back
// to the pool. Bytes between the samples, left out of the plan, are not
// read, nor counted as read.
//
// The shard being truncated while mapped makes the sample fail with an
// error wrapping storage.ErrChanged (see storage.Mapping.Guard), which
// fails the bundle, as a failed read does.
func (f *evaluateSamplesFn) evaluateMapped(ctx context.Context, rt *sdf.LockRTracker, plan ShardPlan, rest offsetrange.Restriction,
	decode sample.Options, out *emitters) error {
	sh := plan.Shard
	var mapped int64
	for i := rest.Start; rt.TryClaim(i); i++ {
		span := plan.Samples[i]
		if err := f.overlap.hold(ctx, out); err != nil {
			return f.fail(out, err)
		}
		smp, m, err := mapSample(ctx, f.store, f.reader, sh.Path, sh.Generation, shard.Entry{Key: span.Key, Offset: span.Offset, Length: span.Length})
		if err != nil {
			unhold()
			// A defect of the sample is set aside as in
			// evaluateStreamed; failing to map it, or the shard
			// changing under it, is no bad input: reject fails.
			if err := out.reject(span.Key, sh.Path, err); err != nil {
				return f.fail(out, err)
			}
			continue
		}
		mapped += span.Length
		progress.bytes.Add(span.Length)
		// The mapping is read-only: closing it loses nothing.
		done := func(s *shard.Sample) { f.reader.Release(s); m.Close(); unhold() }
		job := job{sample: smp, shard: sh.Path, length: span.Length, generation: sh.Generation, decode: decode, mapping: m, done: done}
		if err := f.overlap.submit(ctx, job, out); err != nil {
			return f.fail(out, err)
		}
	}
	bytesRead.Inc(ctx, mapped)
	return f.finishRestriction(rt, out)
}

// minMappedSample is the average sample size, in bytes, from which a local
// shard's samples are mapped rather than read. Mapping costs a few system
// calls per sample, and unmapping interrupts the other cores to flush their
// address translations: 20,000 samples of 2x16x16 took 0.15 ms each mapped,
// 0.10 ms read. A Cityscapes sample (80 MB) is cheaper mapped: the copy it
// saves was 15 to 20% of a run's CPU.
var minMappedSample int64 = 1 << 20 // a variable for tests of the mapped path on small shards

// mapSamples reports whether samples of the given average size in the
// shard at path are to be mapped (see minMappedSample).
func mapSamples(path string, sampleBytes int64) bool {
	return sampleBytes >= minMappedSample && storage.Mappable(path)
}

// mapSample maps the span of sample e of the local shard at path, pinned
// to generation gen, and reads the sample from it with sr, without copying
// its members (see shard.SampleReader.ReadMapped). The caller must touch
// the sample's fields only inside the mapping's Guard, and release the
// sample, then close the mapping, once done with it.
func mapSample(ctx context.Context, store *storage.Store, sr *shard.SampleReader, path string, gen int64, e shard.Entry) (*shard.Sample, *storage.Mapping, error) {
	m, err := store.MapRange(ctx, path, gen, e.Offset, e.Length)
	if err != nil {
		return nil, nil, err
	}
	var smp *shard.Sample
	err = m.Guard(func() (err error) {
		smp, err = sr.ReadMapped(m.Bytes(), e)
		return err
	})
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return smp, m, nil
}

// finishRestriction ends a DoFn call whose samples have all been read.
// Samples still being evaluated finish in a later call of this bundle, or
// in FinishBundle.
func (f *evaluateSamplesFn) finishRestriction(rt *sdf.LockRTracker, out *emitters) error {
	if err := rt.GetError(); err != nil {
		return f.fail(out, err)
	}
	return out.err
}

// fail waits for the samples in flight, so that none outlives the bundle,
// and returns err.
func (f *evaluateSamplesFn) fail(out *emitters, err error) error {
	f.overlap.wait(out)
	return err
}

func (f *evaluateSamplesFn) FinishBundle(ctx context.Context, emitCandidate func(evaluate.Result), emitPartial func(*evaluate.Accumulator),
	emitSlice func(string, *evaluate.Tally), emitReject func(results.Rejection), emitPart func(results.Part)) error {
	out := f.overlap.emitters(ctx, f.store, emitReject, emitPart)
	if err := f.overlap.finish(out, emitCandidate, emitPartial, emitSlice); err != nil {
		return err
	}
	return out.err
}

// emitters are a DoFn call's outputs for evaluated and rejected samples.
// They may only be used by the goroutine of that call.
type emitters struct {
	ctx       context.Context
	store     *storage.Store
	rows      *bundleRows
	rejection func(results.Rejection)
	part      func(results.Part)
	policy    Policy
	err       error // the first error that must fail the bundle
}

// emitImage records an evaluated image, writing the bundle's rows as a
// part when it holds many.
func (o *emitters) emitImage(res evaluate.Result) {
	progress.images.Add(1)
	imagesRead.Inc(o.ctx, 1)
	validPixels.Inc(o.ctx, res.ValidPixels)
	if err := o.rows.add(res); err != nil {
		o.fail(err)
		return
	}
	if o.rows.full() {
		o.flush()
	}
}

// flush writes the rows held as a part and emits it.
func (o *emitters) flush() {
	part, ok, err := o.rows.flush(o.ctx, o.store)
	switch {
	case err != nil:
		o.fail(err)
	case ok:
		o.part(part)
	}
}

func (o *emitters) fail(err error) {
	if o.err == nil {
		o.err = err
	}
}

// reject sets a defective sample aside, or returns err when the run must
// fail for it.
func (o *emitters) reject(key, shardName string, err error) error {
	if err := o.policy.check(err); err != nil {
		return err
	}
	rejected.Inc(o.ctx, 1)
	o.rejection(results.Rejection{Key: key, Shard: shardName, Reason: err.Error()})
	return nil
}

// evaluationSlots bounds the samples (or thumbnails) a worker process
// evaluates at once. A runner may run as many bundles at once as it likes
// (prism does, with no regard for cores), and each evaluation holds a
// decoded image and its buffers: without the bound, peak memory would grow
// with the bundles in flight instead of the number of cores.
var evaluationSlots = make(chan struct{}, runtime.GOMAXPROCS(0))

// samplesHeld bounds the tar samples a worker process holds in memory at
// once, read and waiting for a slot, or being evaluated: GOMAXPROCS and
// the next one. Prism runs a stage's bundles all at once, and each would
// otherwise read its sample (80 MB of Cityscapes float16) before waiting
// for a slot.
var samplesHeld = make(chan struct{}, runtime.GOMAXPROCS(0)+1)

// unhold gives back a place in samplesHeld taken by overlap.hold.
func unhold() { <-samplesHeld }

// acquireSlot waits for an evaluation slot and returns its release.
func acquireSlot(ctx context.Context) (release func(), err error) {
	select {
	case evaluationSlots <- struct{}{}:
		return func() { <-evaluationSlots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// decoders holds the sample decoders of the process, with their label
// buffers (8 MB for a Cityscapes label), for the evaluation and thumbnail
// workers of every bundle: decoding runs in an evaluation slot, so
// GOMAXPROCS decoders serve them all, and a bundle that ends leaves no
// image-sized buffer behind that the next would allocate again.
var decoders = decoderPool{free: make(chan *sample.Decoder, runtime.GOMAXPROCS(0))}

// decoderPool is a bounded pool of sample decoders.
type decoderPool struct {
	free chan *sample.Decoder
}

// get returns a pooled decoder, or a new one. Decoders keep float16
// probabilities as bits, for lovasz.Fused.Half and lovasz.ArgmaxHalfAt.
func (p decoderPool) get() *sample.Decoder {
	select {
	case d := <-p.free:
		return d
	default:
		return &sample.Decoder{Float16Bits: true}
	}
}

// put returns d to the pool, or drops it when the pool is full.
func (p decoderPool) put(d *sample.Decoder) {
	select {
	case p.free <- d:
	default:
	}
}

// job is one sample to decode and evaluate.
type job struct {
	sample    *shard.Sample
	shard     string // the shard, or the prediction file of a pair
	labelFile string // the label file of a pair
	// length and generation locate a tar sample for a later exact read.
	length, generation int64
	decode             sample.Options
	// mapping holds the bytes the sample's fields are slices of, when it
	// was read from a mapped shard: they are touched inside its Guard.
	mapping *storage.Mapping
	done    func(*shard.Sample) // hands the sample's buffers back, or unmaps them, on the DoFn's goroutine
}

// outcome is a job's result.
type outcome struct {
	job    job
	result evaluate.Result
	err    error
}

// worker decodes and evaluates one sample at a time. Each has its own
// evaluation buffers and its own accumulator, merged when the bundle
// finishes.
type worker struct {
	opt  evaluate.Options
	eval *evaluate.Evaluator
}

// run decodes and evaluates the sample of j. A decoded image views its
// sample's member bytes (see sample.Decoder.Float16Bits), so a mapped
// sample is decoded and evaluated inside its mapping's Guard.
func (w *worker) run(j job) outcome {
	var oc outcome
	if err := j.mapping.Guard(func() error { oc = w.evaluate(j); return nil }); err != nil {
		// The shard was cut short under the evaluation, leaving the
		// evaluator's scratch half written: a new one starts clean.
		// The bundle fails for the error, and its accumulator with it.
		w.eval = evaluate.NewEvaluator(w.opt)
		return outcome{job: j, err: err}
	}
	return oc
}

// evaluate decodes and evaluates the sample of j.
func (w *worker) evaluate(j job) outcome {
	dec := decoders.get()
	defer decoders.put(dec)
	img, err := dec.Decode(j.sample, j.shard, j.decode)
	if err != nil {
		return outcome{job: j, err: err}
	}
	res, err := w.eval.Evaluate(img, j.shard)
	res.Offset, res.Length, res.Generation = j.sample.Offset, j.length, j.generation
	res.LabelFile = j.labelFile
	return outcome{job: j, result: res, err: err}
}

// overlap evaluates the samples of a bundle on the worker's cores (see
// inflight) and collects what the bundle sends on: rows, worst images and
// the workers' accumulators.
type overlap struct {
	cfg  EvalConfig
	rows bundleRows
	pool *inflight[*worker, outcome]
}

func newOverlap(cfg EvalConfig) *overlap {
	return &overlap{cfg: cfg, rows: bundleRows{spec: cfg.Rows},
		pool: newInflight[*worker, outcome](func() *worker {
			return &worker{opt: cfg.Eval, eval: evaluate.NewEvaluator(cfg.Eval)}
		})}
}

// emitters returns the outputs of a DoFn call of the bundle.
func (o *overlap) emitters(ctx context.Context, store *storage.Store, reject func(results.Rejection), part func(results.Part)) *emitters {
	return &emitters{ctx: ctx, store: store, rows: &o.rows, rejection: reject, part: part, policy: o.cfg.Policy}
}

// submit starts evaluating j as soon as a worker and a slot are free,
// emitting the outcomes that arrive meanwhile.
func (o *overlap) submit(ctx context.Context, j job, out *emitters) error {
	if err := o.pool.start(ctx, func(w *worker) outcome { return w.run(j) }, out.receive); err != nil {
		j.done(j.sample) // never started: its buffers go back
		return err
	}
	return out.err
}

// hold waits for a place in samplesHeld, emitting the outcomes that arrive
// meanwhile: those free places.
func (o *overlap) hold(ctx context.Context, out *emitters) error {
	if err := o.pool.hold(ctx, samplesHeld, out.receive); err != nil {
		return err
	}
	if out.err != nil {
		unhold()
	}
	return out.err
}

// wait emits every outcome still to come.
func (o *overlap) wait(out *emitters) { o.pool.wait(out.receive) }

// receive emits an evaluated sample, or rejects it.
func (o *emitters) receive(oc outcome) {
	oc.job.done(oc.job.sample)
	if oc.err != nil {
		if err := o.reject(oc.job.sample.Key, oc.job.shard, oc.err); err != nil {
			o.fail(err)
		}
		return
	}
	o.emitImage(oc.result)
}

// finish waits for the bundle's samples, emits the merged accumulator and
// slice tallies, and releases the workers' image-sized buffers to the
// process (see evaluate.Evaluator.Release): an idle DoFn instance (runners
// keep several) must not hold on to them, and the next bundle's workers
// reuse them.
func (o *overlap) finish(out *emitters, emitCandidate func(evaluate.Result), emitPartial func(*evaluate.Accumulator),
	emitSlice func(string, *evaluate.Tally)) error {
	o.wait(out)
	out.flush()
	for _, r := range o.rows.candidates() {
		emitCandidate(r)
	}
	var acc *evaluate.Accumulator
	slices := map[string]*evaluate.Tally{}
	var err error
	for _, w := range o.pool.workers() {
		if err == nil {
			acc, err = takeInto(w.eval, acc, slices)
		}
		w.eval.Release() // whatever happened: the buffers go back
	}
	if err != nil {
		return err
	}
	if acc != nil {
		if data, err := acc.MarshalBinary(); err == nil { // the coder's encoding, measured
			partials.Inc(out.ctx, 1)
			partialBytes.Inc(out.ctx, int64(len(data)))
		}
		emitPartial(acc)
	}
	for key, t := range slices {
		emitSlice(key, t)
	}
	return nil
}

// takeInto merges what ev accumulated into acc and slices, and returns acc.
func takeInto(ev *evaluate.Evaluator, acc *evaluate.Accumulator, slices map[string]*evaluate.Tally) (*evaluate.Accumulator, error) {
	a, s, err := ev.Take()
	if err != nil {
		return acc, err
	}
	if acc == nil {
		acc = a
	} else if err := acc.Merge(a); err != nil {
		return acc, err
	}
	for key, t := range s {
		if slices[key] == nil {
			slices[key] = t
		} else if err := slices[key].Merge(t); err != nil {
			return acc, err
		}
	}
	return acc, nil
}

// reset empties the workers' accumulators and the bundle's rows.
func (o *overlap) reset() {
	o.rows.reset()
	for _, w := range o.pool.workers() {
		w.eval.Take() // dropped, error and all
	}
}

// countingReader counts the bytes read through it and keeps the first read
// error, so that a storage failure is told apart from a broken shard.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	progress.bytes.Add(int64(n))
	if err != nil && err != io.EOF && c.err == nil {
		c.err = err
	}
	return n, err
}
