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

	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/storage"
)

func init() {
	beam.RegisterType(reflect.TypeOf((*rejectionLineFn)(nil)).Elem())
	beam.RegisterType(reflect.TypeOf((*writePartFn)(nil)).Elem())
	register.Emitter2[int, string]()
	register.Emitter1[results.Part]()
	register.Iter1[string]()
}

// DefaultParts is the number of pieces rejected.jsonl is written in when
// OutputSpec.Parts is 0: even if every one of 5 million samples were
// rejected, about 300,000 lines (60 MB) for each of 16 workers to sort.
const DefaultParts = 16

// WriteRejections writes the rejections as sorted parts of rejected.jsonl
// under the run's temporary prefix, in parallel: each goes to the part its
// shard and key hash to, and each part is sorted and written by one worker.
// It returns a results.Part per part written; the last stage merges them.
// (The evaluation writes the parts of per_image.jsonl itself.)
func WriteRejections(s beam.Scope, spec OutputSpec, rejected beam.PCollection) beam.PCollection {
	s = s.Scope("transforms.WriteRejections")
	n := spec.Parts
	if n <= 0 {
		n = DefaultParts
	}
	lines := beam.ParDo(s, &rejectionLineFn{Parts: n}, rejected)
	return beam.ParDo(s, &writePartFn{File: results.RejectedFile, Dir: spec.TempDir(), Parts: n, Storage: spec.Storage}, beam.GroupByKey(s, lines))
}

// partOf is the part a row with the given key goes to.
func partOf(key string, parts int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(parts))
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
