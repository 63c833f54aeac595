package npy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// magic starts every .npy file.
const magic = "\x93NUMPY"

// maxHeaderLen bounds the header dictionary a reader will buffer. Headers of
// the plain (non-structured) arrays this package supports are well under
// 1 KiB; the bound keeps a corrupt version 2.0 or 3.0 length field, which is
// 32 bits wide, from causing a huge allocation.
const maxHeaderLen = 1 << 16

// Header is the array description stored at the start of a .npy file.
type Header struct {
	// Descr is the NumPy type string of the elements, such as "<f4".
	Descr string
	// FortranOrder reports whether the data is stored column-major.
	FortranOrder bool
	// Shape lists the array's dimensions; it is empty for a scalar.
	Shape []int
}

// ReadHeader reads the magic string, version and header dictionary from r.
// It returns the header and the number of bytes consumed, which is the offset
// of the array data in the file. Elements are not read.
func ReadHeader(r io.Reader) (Header, int, error) {
	var prefix [len(magic) + 2]byte
	if _, err := io.ReadFull(r, prefix[:]); err != nil {
		return Header{}, 0, fmt.Errorf("npy: reading magic: %w", err)
	}
	if string(prefix[:len(magic)]) != magic {
		return Header{}, 0, errors.New("npy: not a .npy file (bad magic string)")
	}
	major, minor := prefix[len(magic)], prefix[len(magic)+1]
	var lenSize int
	switch {
	case major == 1 && minor == 0:
		lenSize = 2
	case (major == 2 || major == 3) && minor == 0:
		lenSize = 4
	default:
		return Header{}, 0, fmt.Errorf("npy: unsupported format version %d.%d", major, minor)
	}
	var lenBuf [4]byte
	if _, err := io.ReadFull(r, lenBuf[:lenSize]); err != nil {
		return Header{}, 0, fmt.Errorf("npy: reading header length: %w", err)
	}
	headerLen := int64(binary.LittleEndian.Uint32(lenBuf[:]))
	if headerLen > maxHeaderLen {
		return Header{}, 0, fmt.Errorf("npy: header length %d exceeds %d bytes", headerLen, maxHeaderLen)
	}
	dict := make([]byte, headerLen)
	if _, err := io.ReadFull(r, dict); err != nil {
		return Header{}, 0, fmt.Errorf("npy: reading %d-byte header: %w", headerLen, err)
	}
	h, err := parseDict(string(dict))
	if err != nil {
		return Header{}, 0, fmt.Errorf("npy: parsing header: %w", err)
	}
	return h, len(prefix) + lenSize + len(dict), nil
}

// parseDict parses the header, a Python dictionary literal such as
//
//	{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
//
// It accepts exactly the three keys NumPy writes, in any order, and the
// subset of Python literal syntax NumPy produces for them.
func parseDict(s string) (Header, error) {
	p := &dictParser{s: s}
	var h Header
	var haveDescr, haveOrder, haveShape bool
	if err := p.expect('{'); err != nil {
		return Header{}, err
	}
	for {
		p.skipSpace()
		if p.peek() == '}' {
			p.pos++
			break
		}
		key, err := p.str()
		if err != nil {
			return Header{}, fmt.Errorf("key: %w", err)
		}
		if err := p.expect(':'); err != nil {
			return Header{}, err
		}
		var dup bool
		switch key {
		case "descr":
			dup, haveDescr = haveDescr, true
			p.skipSpace()
			if p.peek() == '[' {
				return Header{}, errors.New("structured dtypes are not supported")
			}
			h.Descr, err = p.str()
		case "fortran_order":
			dup, haveOrder = haveOrder, true
			h.FortranOrder, err = p.boolean()
		case "shape":
			dup, haveShape = haveShape, true
			h.Shape, err = p.shape()
		default:
			return Header{}, fmt.Errorf("unexpected key %q", key)
		}
		if err != nil {
			return Header{}, fmt.Errorf("%s: %w", key, err)
		}
		if dup {
			return Header{}, fmt.Errorf("duplicate key %q", key)
		}
		p.skipSpace()
		if p.peek() == ',' {
			p.pos++
			continue
		}
		if err := p.expect('}'); err != nil {
			return Header{}, err
		}
		break
	}
	p.skipSpace()
	if p.pos != len(p.s) {
		return Header{}, fmt.Errorf("unexpected text after dictionary at offset %d", p.pos)
	}
	if !haveDescr || !haveOrder || !haveShape {
		return Header{}, errors.New("want keys 'descr', 'fortran_order' and 'shape'")
	}
	return h, nil
}

// dictParser scans the Python literal syntax of a .npy header.
type dictParser struct {
	s   string
	pos int
}

// peek returns the next byte, or 0 at the end of the input.
func (p *dictParser) peek() byte {
	if p.pos < len(p.s) {
		return p.s[p.pos]
	}
	return 0
}

func (p *dictParser) skipSpace() {
	for p.pos < len(p.s) && (p.s[p.pos] == ' ' || p.s[p.pos] == '\t' || p.s[p.pos] == '\n' || p.s[p.pos] == '\r') {
		p.pos++
	}
}

// expect skips spaces and consumes c.
func (p *dictParser) expect(c byte) error {
	p.skipSpace()
	if p.peek() != c {
		return fmt.Errorf("want %q at offset %d", c, p.pos)
	}
	p.pos++
	return nil
}

// str consumes a quoted string without escapes, as repr writes type strings
// and key names.
func (p *dictParser) str() (string, error) {
	p.skipSpace()
	quote := p.peek()
	if quote != '\'' && quote != '"' {
		return "", fmt.Errorf("want a quoted string at offset %d", p.pos)
	}
	start := p.pos + 1
	for i := start; i < len(p.s); i++ {
		switch p.s[i] {
		case quote:
			p.pos = i + 1
			return p.s[start:i], nil
		case '\\':
			return "", fmt.Errorf("escape sequences are not supported (offset %d)", i)
		}
	}
	return "", fmt.Errorf("unterminated string at offset %d", p.pos)
}

// boolean consumes True or False.
func (p *dictParser) boolean() (bool, error) {
	p.skipSpace()
	word := p.word()
	switch word {
	case "True":
		return true, nil
	case "False":
		return false, nil
	}
	return false, fmt.Errorf("want True or False, got %q", word)
}

// word consumes a run of letters, digits and underscores.
func (p *dictParser) word() string {
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c != '_' && (c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			break
		}
		p.pos++
	}
	return p.s[start:p.pos]
}

// shape consumes a tuple of non-negative integers such as (), (3,) or
// (2, 3). Python 2 wrote long integers with an L suffix, as in (2L, 3L).
func (p *dictParser) shape() ([]int, error) {
	if err := p.expect('('); err != nil {
		return nil, err
	}
	dims := []int{}
	for {
		p.skipSpace()
		if p.peek() == ')' {
			p.pos++
			return dims, nil
		}
		word := p.word()
		digits := word
		if len(digits) > 1 && digits[len(digits)-1] == 'L' {
			digits = digits[:len(digits)-1]
		}
		n, err := strconv.ParseUint(digits, 10, strconv.IntSize-1)
		if err != nil {
			return nil, fmt.Errorf("dimension %q is not a non-negative integer", word)
		}
		dims = append(dims, int(n))
		p.skipSpace()
		if p.peek() == ',' {
			p.pos++
			continue
		}
		if err := p.expect(')'); err != nil {
			return nil, err
		}
		return dims, nil
	}
}
