// Package labelmap translates the label values stored in a dataset's files
// into the class ids a model predicts.
//
// Datasets often store labels in an id space other than the one a model is
// trained on: Cityscapes' labelIds run from 0 to 33 while models predict 19
// trainIds, and ADE20K stores "other" as 0 and class k as k+1. A [Map]
// remaps a label map in place, and the same type remaps predicted class
// maps that use another id space.
//
// A map is written as a JSON object from raw value to class id, keys being
// the raw values as decimal strings (as JSON requires) and values integers:
//
//	{"-1": 255, "0": 255, "7": 0, "8": 1, "26": 13}
//
// Every raw value the files hold must be listed, including an ignore value
// that stays ignored ("255": 255). A raw value the map does not list is an
// error rather than being passed through: a value missing from the map is
// either a mistake in the map or a file from another dataset, and scoring it
// as a class id of the wrong space would yield a plausible-looking but wrong
// IoU.
package labelmap

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// MaxSpan is the largest range of raw values, from the smallest key of a map
// to the largest, that Parse accepts. The map is held as a table over that
// range, so the bound keeps a map such as {"0": 0, "2000000000": 1} from
// allocating gigabytes; 16-bit label images need a span of 65536.
const MaxSpan = 1 << 20

// Map remaps label values. Build one with [Parse] or [ReduceZeroLabel]; the
// zero Map maps nothing. A Map is not modified by Apply, so one Map may be
// used by several goroutines at once.
type Map struct {
	// lo is the raw value of table[0].
	lo    int32
	table []entry

	// reduceZero selects ADE20K's rule instead of the table; see
	// ReduceZeroLabel.
	reduceZero bool
	ignore     int32
}

// entry is the class id that one raw value maps to, if any.
type entry struct {
	to     int32
	mapped bool
}

// Parse reads a map from a JSON object whose keys are raw label values
// written as decimal integers ("7", "-1"; not "07" or "7.0") and whose values
// are the integers they map to. Keys must be distinct, within the int32
// range and span at most [MaxSpan] values.
func Parse(data []byte) (*Map, error) {
	pairs, err := parsePairs(data)
	if err != nil {
		return nil, fmt.Errorf("labelmap: %w", err)
	}
	if len(pairs) == 0 {
		return nil, errors.New("labelmap: the map is empty")
	}
	lo, hi := pairs[0].from, pairs[0].from
	for _, p := range pairs {
		lo, hi = min(lo, p.from), max(hi, p.from)
	}
	if span := int64(hi) - int64(lo) + 1; span > MaxSpan {
		return nil, fmt.Errorf("labelmap: the keys span %d values, from %d to %d, more than the limit of %d", span, lo, hi, MaxSpan)
	}
	m := &Map{lo: lo, table: make([]entry, int64(hi)-int64(lo)+1)}
	for _, p := range pairs {
		e := &m.table[p.from-lo]
		if e.mapped {
			return nil, fmt.Errorf("labelmap: key %d appears twice", p.from)
		}
		*e = entry{to: p.to, mapped: true}
	}
	return m, nil
}

// pair is one key and value of a map's JSON object.
type pair struct{ from, to int32 }

// parsePairs reads the members of a JSON object of integers in order, so
// that Parse can report a key given twice, which encoding/json's decoding
// into a Go map would silently resolve.
func parsePairs(data []byte) ([]pair, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, fmt.Errorf("want a JSON object, got %v", tok)
	}
	var pairs []pair
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string) // Token returns only strings as object keys.
		from, err := strconv.ParseInt(key, 10, 32)
		if err != nil || strconv.FormatInt(from, 10) != key {
			return nil, fmt.Errorf("key %q is not a label value (a decimal int32 such as \"7\" or \"-1\")", key)
		}
		if tok, err = dec.Token(); err != nil {
			return nil, err
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("key %q: value %v is not an integer", key, tok)
		}
		to, err := strconv.ParseInt(num.String(), 10, 32)
		if err != nil {
			return nil, fmt.Errorf("key %q: value %s is not an int32 integer", key, num)
		}
		pairs = append(pairs, pair{int32(from), int32(to)})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON object")
	}
	return pairs, nil
}

// ReduceZeroLabel returns the map of ADE20K-style labels (mmsegmentation's
// reduce_zero_label), where raw 0 is "other" and raw v >= 1 is class v-1:
// 0 maps to ignore, ignore maps to itself, and every other v >= 1 maps to
// v-1. Negative values other than ignore are unmapped. With ignore 255 and
// 8-bit labels the map is one-to-one apart from 0; with 16-bit labels raw
// 256 would also map to 255.
func ReduceZeroLabel(ignore int32) *Map {
	return &Map{reduceZero: true, ignore: ignore}
}

// Apply remaps labels in place. A value the map does not cover is an error
// naming the value and the index of its first pixel (row-major, so pixel i of
// a W-wide image is row i/W, column i%W); labels are then left partly
// remapped and must not be used.
func (m *Map) Apply(labels []int32) error {
	if m.reduceZero {
		for i, v := range labels {
			switch {
			case v == 0 || v == m.ignore:
				labels[i] = m.ignore
			case v > 0:
				labels[i] = v - 1
			default:
				return unmapped(i, v)
			}
		}
		return nil
	}
	if len(m.table) == 0 {
		return errors.New("labelmap: the map is empty (build it with Parse or ReduceZeroLabel)")
	}
	for i, v := range labels {
		j := int64(v) - int64(m.lo)
		if j < 0 || j >= int64(len(m.table)) || !m.table[j].mapped {
			return unmapped(i, v)
		}
		labels[i] = m.table[j].to
	}
	return nil
}

func unmapped(pixel int, value int32) error {
	return fmt.Errorf("labelmap: pixel %d has value %d, which the map does not cover", pixel, value)
}
