package backup

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func TestCRC64Jones(t *testing.T) {
	// The check value of CRC-64/Jones as Redis' crc64.c tests it.
	if got := crc64Update(0, []byte("123456789")); got != 0xe9c6d914c4b8d9ca {
		t.Fatalf("crc64(123456789) = %x", got)
	}
	// Incremental updates over any split give the one-shot sum.
	data := make([]byte, 10000)
	for i := range data {
		data[i] = byte(rand.IntN(256))
	}
	want := crc64Update(0, data)
	for split := range 20 {
		if got := crc64Update(crc64Update(0, data[:split]), data[split:]); got != want {
			t.Fatalf("split at %d: %x, want %x", split, got, want)
		}
	}
}

// trailerCRC must sum everything but the last 8 bytes however the stream
// is cut into writes.
func TestTrailerCRC(t *testing.T) {
	for _, size := range []int{0, 3, 8, 9, 100, 5000} {
		body := make([]byte, size)
		for i := range body {
			body[i] = byte(rand.IntN(256))
		}
		want := crc64Update(0, body)
		stream := binary.LittleEndian.AppendUint64(append([]byte(nil), body...), want)
		for _, maxChunk := range []int{1, 2, 7, 8, 9, 64, 100000} {
			var c trailerCRC
			for p := stream; len(p) > 0; {
				n := min(len(p), 1+rand.IntN(maxChunk))
				c.Write(p[:n])
				p = p[n:]
			}
			crc, trailer, ok := c.sum()
			if !ok || crc != want || trailer != want || c.n != int64(len(stream)) {
				t.Fatalf("size %d chunks ≤%d: crc %x trailer %x ok %v, want %x", size, maxChunk, crc, trailer, ok, want)
			}
		}
	}
}

func BenchmarkCRC64(b *testing.B) {
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(buf)))
	var crc uint64
	for i := 0; i < b.N; i++ {
		crc = crc64Update(crc, buf)
	}
	_ = crc
}
