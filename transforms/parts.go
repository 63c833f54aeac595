package transforms

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"reflect"
	"slices"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/storage"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*imageLineFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*rejectionLineFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*writePartFn)(nil)).Elem())
	register.Emitter2[int, string]()
	register.Emitter1[results.Part]()
	register.Iter1[string]()
}

// DefaultParts is the number of pieces per_image.jsonl and rejected.jsonl
// are written in when OutputSpec.Parts is 0: at 5 million images, about
// 300,000 rows (50 MB) for each of 16 workers to sort.
const DefaultParts = 16

// WriteParts writes the per-image rows and the rejections as sorted part
// files under the run's temporary prefix, in parallel: each row goes to the
// part its key hashes to, and each part is sorted and written by one
// worker. No worker holds more than one part. It returns a results.Part per
// part written; the last stage merges them into per_image.jsonl and
// rejected.jsonl.
func WriteParts(s beam.Scope, spec OutputSpec, images, rejected beam.PCollection) beam.PCollection {
	s = s.Scope("WriteParts")
	n := spec.Parts
	if n <= 0 {
		n = DefaultParts
	}
	imageLines := beam.ParDo(s, &imageLineFn{RunID: spec.RunID, Mode: spec.Settings.Mode, Parts: n}, images)
	rejectionLines := beam.ParDo(s, &rejectionLineFn{Parts: n}, rejected)
	imageParts := beam.ParDo(s, &writePartFn{File: results.PerImageFile, Dir: spec.tmp(), Parts: n, Storage: spec.Storage}, beam.GroupByKey(s, imageLines))
	rejectionParts := beam.ParDo(s, &writePartFn{File: results.RejectedFile, Dir: spec.tmp(), Parts: n, Storage: spec.Storage}, beam.GroupByKey(s, rejectionLines))
	return beam.Flatten(s, imageParts, rejectionParts)
}

// partOf is the part a row with the given key goes to.
func partOf(key string, parts int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(parts))
}

// imageLineFn renders a per-image result as its line of per_image.jsonl.
type imageLineFn struct {
	RunID string
	Mode  evaluate.Mode
	Parts int
}

func (f *imageLineFn) ProcessElement(r evaluate.Result, emit func(int, string)) error {
	line, err := json.Marshal(results.NewImageRow(f.RunID, f.Mode, r))
	if err != nil {
		return fmt.Errorf("per-image row of %s: %w", r.Key, err)
	}
	emit(partOf(r.Key, f.Parts), string(line))
	return nil
}

// rejectionLineFn renders a rejection as its line of rejected.jsonl.
type rejectionLineFn struct {
	Parts int
}

func (f *rejectionLineFn) ProcessElement(r results.Rejection, emit func(int, string)) error {
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	emit(partOf(r.Shard+"\x00"+r.Key, f.Parts), string(line))
	return nil
}

// writePartFn sorts the lines of one part and writes them. The part's name
// is fixed by its number, so a retried bundle rewrites the same object.
type writePartFn struct {
	File    string
	Dir     string
	Parts   int
	Storage storage.Options

	store *storage.Store
}

func (f *writePartFn) Setup() { f.store = storage.New(f.Storage) }

func (f *writePartFn) Teardown() error { return f.store.Close() }

func (f *writePartFn) ProcessElement(ctx context.Context, part int, lines func(*string) bool, emit func(results.Part)) error {
	type keyed struct{ key, line string }
	var rows []keyed
	var line string
	for lines(&line) {
		key, err := results.SortKey(f.File, []byte(line))
		if err != nil {
			return err
		}
		rows = append(rows, keyed{key, line})
	}
	slices.SortFunc(rows, func(a, b keyed) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return strings.Compare(a.line, b.line)
	})
	var buf bytes.Buffer
	for _, r := range rows {
		buf.WriteString(r.line)
		buf.WriteByte('\n')
	}
	stem := strings.TrimSuffix(f.File, ".jsonl")
	path := storage.Join(f.Dir, "parts", fmt.Sprintf("%s-%05d-of-%05d.jsonl", stem, part, f.Parts))
	if err := f.store.WriteFile(ctx, path, buf.Bytes()); err != nil {
		return err
	}
	emit(results.Part{File: f.File, Path: path, Lines: int64(len(rows))})
	return nil
}
