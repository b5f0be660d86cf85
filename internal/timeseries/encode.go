package timeseries

import (
	"encoding/binary"
	"math/bits"
)

// chunkSlots is the number of 10 s slots in one chunk (10 min 40 s): the
// width of a presence bitmap.
const chunkSlots = 64

// chunk is a closed chunk: its first slot, which slots have a sample, and
// the encoded values (see encodeChunk).
type chunk struct {
	start   int64
	present uint64
	data    []byte
}

func zigzag(v int64) uint64   { return uint64(v<<1) ^ uint64(v>>63) }
func unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// encodeChunk encodes the present slots' values. Per series: the first
// value as a zigzag varint, one byte with the bit width w of the largest
// zigzag difference, then every following difference in w bits.
func encodeChunk(present uint64, vals *[chunkSlots][numSeries]int64) []byte {
	n := bits.OnesCount64(present)
	if n == 0 {
		return nil
	}
	idx := make([]int, 0, n)
	for i := 0; i < chunkSlots; i++ {
		if present&(1<<i) != 0 {
			idx = append(idx, i)
		}
	}
	var out []byte
	for s := 0; s < numSeries; s++ {
		out = binary.AppendUvarint(out, zigzag(vals[idx[0]][s]))
		var maxZ uint64
		for k := 1; k < n; k++ {
			maxZ |= zigzag(vals[idx[k]][s] - vals[idx[k-1]][s])
		}
		w := uint(bits.Len64(maxZ))
		out = append(out, byte(w))
		bw := bitWriter{buf: out}
		for k := 1; k < n; k++ {
			bw.write(zigzag(vals[idx[k]][s]-vals[idx[k-1]][s]), w)
		}
		out = bw.flush()
	}
	// An exact-size copy: append grows by doubling.
	return append([]byte(nil), out...)
}

// decodeChunk calls f for each present slot, oldest first, with its values.
func decodeChunk(c chunk, f func(slot int64, v *[numSeries]int64)) {
	n := bits.OnesCount64(c.present)
	if n == 0 {
		return
	}
	vals := make([][numSeries]int64, n)
	data := c.data
	for s := 0; s < numSeries; s++ {
		u, k := binary.Uvarint(data)
		if k <= 0 || k >= len(data) {
			return // corrupt; cannot happen with encodeChunk's output
		}
		data = data[k:]
		w := uint(data[0])
		data = data[1:]
		vals[0][s] = unzigzag(u)
		br := bitReader{buf: data}
		for i := 1; i < n; i++ {
			vals[i][s] = vals[i-1][s] + unzigzag(br.read(w))
		}
		data = data[br.consumed():]
	}
	i := 0
	for b := 0; b < chunkSlots; b++ {
		if c.present&(1<<b) != 0 {
			f(c.start+int64(b), &vals[i])
			i++
		}
	}
}

type bitWriter struct {
	buf []byte
	cur byte
	n   uint // bits used in cur
}

func (b *bitWriter) write(v uint64, w uint) {
	for w > 0 {
		take := min(8-b.n, w)
		b.cur |= byte(v&(1<<take-1)) << b.n
		v >>= take
		w -= take
		b.n += take
		if b.n == 8 {
			b.buf = append(b.buf, b.cur)
			b.cur, b.n = 0, 0
		}
	}
}

func (b *bitWriter) flush() []byte {
	if b.n > 0 {
		b.buf = append(b.buf, b.cur)
		b.cur, b.n = 0, 0
	}
	return b.buf
}

type bitReader struct {
	buf []byte
	pos uint // bits read
}

func (b *bitReader) read(w uint) uint64 {
	var v uint64
	var got uint
	for got < w {
		i := b.pos / 8
		if int(i) >= len(b.buf) {
			return v
		}
		off := b.pos % 8
		take := min(8-off, w-got)
		v |= uint64((b.buf[i]>>off)&(1<<take-1)) << got
		got += take
		b.pos += take
	}
	return v
}

// consumed is the number of whole bytes read (the last partly).
func (b *bitReader) consumed() int { return int((b.pos + 7) / 8) }
