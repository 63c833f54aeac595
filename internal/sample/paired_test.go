package sample

import (
	"testing"
)

func TestKeyOf(t *testing.T) {
	cityscapes, err := CompileKeyRegex(`^([a-z]+_\d+_\d+)_`)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		re   bool
		key  string
		ok   bool
	}{
		{"gs://b/labels/img1.png", false, "img1", true},
		{"preds/img1.probs.npy", false, "img1", true},
		{"gtFine/val/frankfurt/frankfurt_000000_000294_gtFine_labelTrainIds.png", true, "frankfurt_000000_000294", true},
		{"preds/frankfurt_000000_000294_leftImg8bit.probs.npy", true, "frankfurt_000000_000294", true},
		{"preds/readme.txt", true, "", false},
	}
	for _, tt := range tests {
		re := cityscapes
		if !tt.re {
			re = nil
		}
		key, ok := KeyOf(tt.path, re)
		if key != tt.key || ok != tt.ok {
			t.Errorf("KeyOf(%s) = %q %v, want %q %v", tt.path, key, ok, tt.key, tt.ok)
		}
	}
	for _, bad := range []string{"(", "no-group", "(a)(b)"} {
		if _, err := CompileKeyRegex(bad); err == nil {
			t.Errorf("CompileKeyRegex(%q) accepted", bad)
		}
	}
}

func TestPairedSampleFields(t *testing.T) {
	s := PairedSample("k", "x/k_gtFine_labelTrainIds.PNG", []byte("l"), "y/k_leftImg8bit.Probs.npy", []byte("p"))
	if string(s.Fields["label.png"]) != "l" || string(s.Fields["probs.npy"]) != "p" || len(s.Fields) != 2 {
		t.Errorf("fields %v", s.Fields)
	}
}
