package labelmap

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const cityscapesFile = "cityscapes_labelids_to_trainids.json"

// cityscapesTrainIDs is the Cityscapes table of cityscapesScripts' labels.py
// from labelId -1 to 33: the trainIds 0 to 18, and 255 for every label not
// trained on, including license plate, whose trainId labels.py gives as -1.
var cityscapesTrainIDs = []int32{
	255,                               // -1 license plate
	255, 255, 255, 255, 255, 255, 255, // 0-6 unlabeled to ground
	0, 1, 255, 255, // 7 road, 8 sidewalk, 9 parking, 10 rail track
	2, 3, 4, 255, 255, 255, // 11 building, 12 wall, 13 fence, 14-16 guard rail, bridge, tunnel
	5, 255, 6, 7, // 17 pole, 18 polegroup, 19 traffic light, 20 traffic sign
	8, 9, 10, 11, 12, 13, 14, 15, // 21 vegetation to 28 bus
	255, 255, 16, 17, 18, // 29 caravan, 30 trailer, 31 train, 32 motorcycle, 33 bicycle
}

func TestCityscapes(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", cityscapesFile))
	if err != nil {
		t.Fatal(err)
	}
	// The example shipped to users must be the file tested here.
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", cityscapesFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, example) {
		t.Errorf("examples/%s differs from testdata/%s", cityscapesFile, cityscapesFile)
	}
	m, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}

	labels := []int32{26, 7, 0, 33, -1, 24}
	if err := m.Apply(labels); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if want := []int32{13, 0, 255, 18, 255, 11}; !slices.Equal(labels, want) {
		t.Errorf("car, road, unlabeled, bicycle, license plate, person = %v, want %v", labels, want)
	}

	all := make([]int32, len(cityscapesTrainIDs))
	for i := range all {
		all[i] = int32(i - 1)
	}
	if err := m.Apply(all); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if !slices.Equal(all, cityscapesTrainIDs) {
		t.Errorf("labelIds -1 to 33 map to\n%v\nwant\n%v", all, cityscapesTrainIDs)
	}

	// 255 is a trainId, not a labelId: a trainId image is an error.
	trainIDs := []int32{0, 13, 255}
	err = m.Apply(trainIDs)
	if want := "labelmap: pixel 2 has value 255, which the map does not cover"; err == nil || err.Error() != want {
		t.Errorf("Apply(%v) = %v, want %q", []int32{0, 13, 255}, err, want)
	}
}

func TestApply(t *testing.T) {
	sparse, err := Parse([]byte(`{"3": 1, "1": 0, "10": 255, "-5": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		m       *Map
		labels  []int32
		want    []int32
		wantErr string
	}{
		{"table", sparse, []int32{1, 3, 10, -5, 1}, []int32{0, 1, 255, 2, 0}, ""},
		{"table, no pixels", sparse, []int32{}, []int32{}, ""},
		{"table, gap", sparse, []int32{1, 3, 2, 7}, nil, "labelmap: pixel 2 has value 2, which the map does not cover"},
		{"table, below", sparse, []int32{-6}, nil, "labelmap: pixel 0 has value -6, which the map does not cover"},
		{"table, above", sparse, []int32{3, 11}, nil, "labelmap: pixel 1 has value 11, which the map does not cover"},
		{"table, far below", sparse, []int32{-2147483648}, nil, "labelmap: pixel 0 has value -2147483648, which the map does not cover"},
		{"reduce zero label", ReduceZeroLabel(255), []int32{0, 1, 2, 150, 255, 254}, []int32{255, 0, 1, 149, 255, 253}, ""},
		{"reduce zero label, ignore -1", ReduceZeroLabel(-1), []int32{0, -1, 1, 255}, []int32{-1, -1, 0, 254}, ""},
		{"reduce zero label, negative", ReduceZeroLabel(255), []int32{0, 1, -3}, nil, "labelmap: pixel 2 has value -3, which the map does not cover"},
		{"zero Map", &Map{}, []int32{0}, nil, "labelmap: the map is empty (build it with Parse or ReduceZeroLabel)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			labels := slices.Clone(tt.labels)
			err := tt.m.Apply(labels)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("Apply(%v) = %v, want error %q", tt.labels, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply(%v): %v", tt.labels, err)
			}
			if !slices.Equal(labels, tt.want) {
				t.Errorf("Apply(%v) gives %v, want %v", tt.labels, labels, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		json string
		want string
	}{
		{``, "labelmap: EOF"},
		{`[1, 2]`, "labelmap: want a JSON object, got ["},
		{`7`, "labelmap: want a JSON object, got 7"},
		{`{}`, "labelmap: the map is empty"},
		{`{"road": 0}`, `labelmap: key "road" is not a label value`},
		{`{"07": 0}`, `labelmap: key "07" is not a label value`},
		{`{"+7": 0}`, `labelmap: key "+7" is not a label value`},
		{`{"7.0": 0}`, `labelmap: key "7.0" is not a label value`},
		{`{"2147483648": 0}`, `labelmap: key "2147483648" is not a label value`},
		{`{"7": 0.5}`, `labelmap: key "7": value 0.5 is not an int32 integer`},
		{`{"7": 1e2}`, `labelmap: key "7": value 1e2 is not an int32 integer`},
		{`{"7": 4294967296}`, `labelmap: key "7": value 4294967296 is not an int32 integer`},
		{`{"7": "0"}`, `labelmap: key "7": value 0 is not an integer`},
		{`{"7": null}`, `labelmap: key "7": value <nil> is not an integer`},
		{`{"7": [0]}`, `labelmap: key "7": value [ is not an integer`},
		{`{"7": 0, "8": 1, "7": 2}`, "labelmap: key 7 appears twice"},
		{`{"7": 0`, "labelmap: EOF"},
		{`{"7": 0} {}`, "labelmap: unexpected data after the JSON object"},
		{`{"7" 0}`, "labelmap: invalid character '0' after object key"},
		{`{"-2147483648": 0, "2147483647": 1}`, "labelmap: the keys span 4294967296 values, from -2147483648 to 2147483647, more than the limit of 1048576"},
		{`{"0": 0, "1048576": 1}`, "labelmap: the keys span 1048577 values, from 0 to 1048576, more than the limit of 1048576"},
	}
	for _, tt := range tests {
		m, err := Parse([]byte(tt.json))
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("Parse(%s) = %v, %v; want an error starting with %q", tt.json, m, err, tt.want)
		}
	}
}

// TestParseSpan checks that a map spanning exactly MaxSpan values, a 16-bit
// label range and more, is accepted.
func TestParseSpan(t *testing.T) {
	m, err := Parse([]byte(`{"0": 0, "1048575": 1}`))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	labels := []int32{1048575, 0}
	if err := m.Apply(labels); err != nil || !slices.Equal(labels, []int32{1, 0}) {
		t.Errorf("Apply = %v, %v; want [1 0], nil", labels, err)
	}
}
