package npy_test

import (
	"bytes"
	"fmt"
	"log"
	"os"
	"slices"

	"github.com/segeval/segeval/internal/npy"
)

// Scores of any float width decode to float32 in row-major order, with the
// array's shape; here a 2-class 2x3 prediction stored as float16, as
// numpy.save(f, probs.astype(np.float16)) writes it.
func ExampleDecodeFloat32() {
	probs := []float32{
		0.9, 0.8, 0.25, // class 0, row 0
		0.1, 0.5, 0.7, // class 0, row 1
		0.1, 0.2, 0.75, // class 1, row 0
		0.9, 0.5, 0.3, // class 1, row 1
	}
	var file bytes.Buffer
	if err := npy.Write(&file, "<f2", []int{2, 2, 3}, probs); err != nil {
		log.Fatal(err)
	}

	values, shape, err := npy.DecodeFloat32(file.Bytes(), npy.Limits{MaxElements: 1 << 20}, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("shape", shape)
	fmt.Println("class 1, row 0:", values[6:9])
	// Output:
	// shape [2 2 3]
	// class 1, row 0: [0.099975586 0.19995117 0.75]
}

// A Fortran-order file, as numpy saves a transposed array without copying
// it, decodes to the same values as its C-order copy. Both files here were
// written by numpy (testdata/gen.py): np.asfortranarray(a) and a itself, for
// a = np.arange(6, dtype="<f4").reshape(2, 3).
func ExampleDecodeFloat32_fortranOrder() {
	lim := npy.Limits{MaxElements: 1 << 20}
	decode := func(name string) ([]float32, []int) {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			log.Fatal(err)
		}
		values, shape, err := npy.DecodeFloat32(data, lim, nil)
		if err != nil {
			log.Fatalf("%s: %v", name, err)
		}
		return values, shape
	}
	fortran, fShape := decode("fortran_f4.npy")
	c, cShape := decode("corder_f4.npy")
	fmt.Println("shapes", fShape, cShape)
	fmt.Println("values", fortran)
	fmt.Println("same as the C-order file:", slices.Equal(fortran, c))
	// Output:
	// shapes [2 3] [2 3]
	// values [0 1 2 3 4 5]
	// same as the C-order file: true
}
