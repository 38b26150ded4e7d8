package collections

import "math/bits"

// bitset is a set of client indices.
type bitset []uint64

func (b bitset) has(i int32) bool {
	w := int(i >> 6)
	return w < len(b) && b[w]&(1<<(uint(i)&63)) != 0
}

// set sets or clears bit i, growing b as needed.
func (b *bitset) set(i int32, v bool) {
	w := int(i >> 6)
	if w >= len(*b) {
		if !v {
			return
		}
		*b = append(*b, make([]uint64, w+1-len(*b))...)
	}
	if v {
		(*b)[w] |= 1 << (uint(i) & 63)
	} else {
		(*b)[w] &^= 1 << (uint(i) & 63)
	}
}

func (b bitset) count() int {
	n := 0
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}

// each calls fn with every index in b, in order.
func (b bitset) each(fn func(i int32)) {
	for wi, w := range b {
		for w != 0 {
			t := bits.TrailingZeros64(w)
			fn(int32(wi<<6 + t))
			w &= w - 1
		}
	}
}

// word returns word w of b, 0 beyond its end.
func (b bitset) word(w int) uint64 {
	if w < len(b) {
		return b[w]
	}
	return 0
}
