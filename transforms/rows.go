package transforms

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/segeval/segeval/internal/evaluate"
	"github.com/segeval/segeval/internal/results"
	"github.com/segeval/segeval/internal/storage"
)

// RowSpec says where the evaluation writes its per-image rows and how many
// worst images it keeps.
type RowSpec struct {
	Dir    string // the run's temporary prefix: parts go under Dir/parts
	RunID  string
	Mode   evaluate.Mode
	WorstK int
}

// maxRowsPerPart bounds the rows a bundle holds before it writes them as a
// part: about 3 MB of JSON, 12 MB with the strings' overhead. A run of 5
// million images then has 250 or more parts for the last stage to merge,
// each read through a small buffer.
const maxRowsPerPart = 20_000

// bundleRows collects a bundle's per-image rows, written as sorted parts,
// and its worst-image candidates. The evaluation writes the rows itself, so
// that no per-image record is shuffled or held by the runner after it: a
// bundle emits at most 2 x WorstK results, its parts' names and its
// accumulator.
//
// Part names are random, so a retried bundle never overwrites a part a
// committed bundle listed; parts of failed attempts are never listed, and
// go with the temporary prefix.
type bundleRows struct {
	spec  RowSpec
	lines []keyedLine
	// highestLoss and lowestMIoU are this bundle's worst images so far,
	// worst first, at most WorstK each.
	highestLoss, lowestMIoU []evaluate.Result
}

type keyedLine struct {
	key  string
	line []byte
}

// add records one evaluated image.
func (b *bundleRows) add(res evaluate.Result) error {
	line, err := json.Marshal(results.NewImageRow(b.spec.RunID, b.spec.Mode, res))
	if err != nil {
		return fmt.Errorf("per-image row of %s: %w", res.Key, err)
	}
	b.lines = append(b.lines, keyedLine{key: res.Key + "\x00" + res.Shard, line: line})
	if !math.IsNaN(res.Loss) {
		b.highestLoss = keepWorst(b.highestLoss, res, b.spec.WorstK, func(a, c evaluate.Result) bool { return lossLess(c, a) })
	}
	if !math.IsNaN(res.MIoU) {
		b.lowestMIoU = keepWorst(b.lowestMIoU, res, b.spec.WorstK, miouLess)
	}
	return nil
}

// keepWorst inserts r into list, kept in order of worse (worst first) and
// cut to k.
func keepWorst(list []evaluate.Result, r evaluate.Result, k int, worse func(a, b evaluate.Result) bool) []evaluate.Result {
	if k <= 0 || len(list) == k && !worse(r, list[k-1]) {
		return list
	}
	i, _ := slices.BinarySearchFunc(list, r, func(e, t evaluate.Result) int {
		if worse(e, t) {
			return -1
		}
		return 1
	})
	list = slices.Insert(list, i, r)
	return list[:min(len(list), k)]
}

// full reports whether the rows held should be written now.
func (b *bundleRows) full() bool { return len(b.lines) >= maxRowsPerPart }

// flush writes the rows held as one part sorted by key, if there are any.
func (b *bundleRows) flush(ctx context.Context, store *storage.Store) (results.Part, bool, error) {
	if len(b.lines) == 0 {
		return results.Part{}, false, nil
	}
	slices.SortFunc(b.lines, func(x, y keyedLine) int { return strings.Compare(x.key, y.key) })
	stem := strings.TrimSuffix(results.PerImageFile, ".jsonl")
	path := storage.Join(b.spec.Dir, "parts", stem+"-"+uuid.NewString()+".jsonl")
	w, err := store.Create(ctx, path)
	if err != nil {
		return results.Part{}, false, err
	}
	buf := bufio.NewWriterSize(w, 256<<10)
	for _, l := range b.lines {
		buf.Write(l.line)
		buf.WriteByte('\n')
	}
	if err := buf.Flush(); err != nil {
		w.Abort()
		return results.Part{}, false, err
	}
	if err := w.Close(); err != nil {
		return results.Part{}, false, err
	}
	part := results.Part{File: results.PerImageFile, Path: path, Lines: int64(len(b.lines))}
	b.lines = b.lines[:0]
	return part, true, nil
}

// candidates returns the bundle's worst images, each once, and forgets them.
func (b *bundleRows) candidates() []evaluate.Result {
	out := slices.Clone(b.highestLoss)
	for _, r := range b.lowestMIoU {
		if !slices.ContainsFunc(out, func(o evaluate.Result) bool { return byKey(o, r) == 0 }) {
			out = append(out, r)
		}
	}
	b.highestLoss, b.lowestMIoU = nil, nil
	return out
}

// reset drops what a failed attempt of the bundle collected.
func (b *bundleRows) reset() {
	b.lines = nil
	b.highestLoss, b.lowestMIoU = nil, nil
}
