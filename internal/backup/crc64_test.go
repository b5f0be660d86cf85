package backup

import (
	"encoding/binary"
	"math/bits"
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

// crc64Bitwise is CRC-64/Jones from its definition, one bit at a time:
// the reference the table and the carry-less folding are checked against.
func crc64Bitwise(crc uint64, p []byte) uint64 {
	for _, b := range p {
		crc ^= uint64(b)
		for range 8 {
			if crc&1 == 1 {
				crc = crc>>1 ^ crcJonesReversed
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

func TestCRC64Polynomial(t *testing.T) {
	if bits.Reverse64(crcJones) != crcJonesReversed {
		t.Fatalf("reflected polynomial %x is not %x reversed", uint64(crcJonesReversed), uint64(crcJones))
	}
	// x^64 mod P is P's lower part; x^65 is one more shift, whose carry
	// (P's top bit is set) brings P in again.
	p := uint64(crcJones)
	if got := xPowModP(64); got != p {
		t.Fatalf("x^64 mod P = %x", got)
	}
	if got, want := xPowModP(65), p<<1^p; got != want {
		t.Fatalf("x^65 mod P = %x, want %x", got, want)
	}
}

// Every length from 0 to 1 KiB and random longer ones, at every alignment
// of the first byte within 64, from a random starting CRC: crc64Update
// (carry-less folding where the CPU has it) equals the table and the
// bitwise definition.
func TestCRC64MatchesReference(t *testing.T) {
	t.Logf("carry-less multiplication in use: %v", useCLMUL)
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 70000)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	check := func(off, n int, init uint64) {
		p := buf[off : off+n]
		want := crc64Bitwise(init, p)
		if got := crc64Table(init, p); got != want {
			t.Fatalf("table: offset %d length %d init %x: %x, want %x", off, n, init, got, want)
		}
		if got := crc64Update(init, p); got != want {
			t.Fatalf("crc64Update: offset %d length %d init %x: %x, want %x", off, n, init, got, want)
		}
	}
	for n := 0; n <= 1024; n++ {
		check(r.IntN(64), n, r.Uint64())
		check(0, n, 0)
	}
	for range 300 {
		check(r.IntN(64), 1024+r.IntN(len(buf)-1024-64), r.Uint64())
	}
	// All ones and all zeros, where a wrong constant would show at once.
	for _, fill := range []byte{0x00, 0xff} {
		p := make([]byte, 4096+17)
		for i := range p {
			p[i] = fill
		}
		if got, want := crc64Update(0, p), crc64Bitwise(0, p); got != want {
			t.Fatalf("%d bytes of %#x: %x, want %x", len(p), fill, got, want)
		}
	}
}

func FuzzCRC64(f *testing.F) {
	f.Add(uint64(0), []byte("123456789"), 0)
	f.Add(uint64(0xe9c6d914c4b8d9ca), make([]byte, 300), 3)
	f.Fuzz(func(t *testing.T, init uint64, p []byte, split int) {
		want := crc64Bitwise(init, p)
		if got := crc64Update(init, p); got != want {
			t.Fatalf("length %d init %x: %x, want %x", len(p), init, got, want)
		}
		if len(p) > 0 {
			split = int(uint(split) % uint(len(p)))
			if got := crc64Update(crc64Update(init, p[:split]), p[split:]); got != want {
				t.Fatalf("length %d split %d: %x, want %x", len(p), split, got, want)
			}
		}
	})
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

func BenchmarkCRC64Table(b *testing.B) {
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	var crc uint64
	for i := 0; i < b.N; i++ {
		crc = crc64Table(crc, buf)
	}
	_ = crc
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
