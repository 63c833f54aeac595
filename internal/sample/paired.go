package sample

import (
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/segeval/segeval/internal/shard"
)

// Paired inputs keep a sample's label and prediction in two files, as
// datasets and model dumps usually do, instead of one tar shard: a folder of
// label PNGs and a folder of prediction arrays. Files pair by key.

// KeyOf returns the key of a paired file: with re, the first capture group
// of re matched against the base name; without, the base name up to its
// first ".". ok is false when re does not match.
func KeyOf(filePath string, re *regexp.Regexp) (key string, ok bool) {
	base := path.Base(filePath)
	if re == nil {
		key, _, _ = strings.Cut(base, ".")
		return key, key != ""
	}
	m := re.FindStringSubmatch(base)
	if len(m) < 2 || m[1] == "" {
		return "", false
	}
	return m[1], true
}

// CompileKeyRegex compiles a --key_regex: it must have exactly one capture
// group.
func CompileKeyRegex(expr string) (*regexp.Regexp, error) {
	if expr == "" {
		return nil, nil
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("key regex: %w", err)
	}
	if re.NumSubexp() != 1 {
		return nil, fmt.Errorf("key regex %q has %d capture groups, want exactly 1", expr, re.NumSubexp())
	}
	return re, nil
}

// PairedSample makes the sample of a label file and a prediction file. The
// label's field is "label." and its extension; the prediction's is its base
// name after the first "." ("x.probs.npy" gives "probs.npy"), so predictions
// are named as inside tar shards.
func PairedSample(key, labelPath string, label []byte, predPath string, pred []byte) *shard.Sample {
	ext := strings.ToLower(strings.TrimPrefix(path.Ext(labelPath), "."))
	_, field, _ := strings.Cut(path.Base(predPath), ".")
	return &shard.Sample{Key: key, Fields: map[string][]byte{
		"label." + ext:         label,
		strings.ToLower(field): pred,
	}}
}
