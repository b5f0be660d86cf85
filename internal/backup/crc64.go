package backup

import (
	"encoding/binary"
	"math/bits"
)

// Redis checksums RDB files with CRC-64/Jones: reflected, polynomial
// 0xad93d23594c935a9 (0x95ac9329ac4bc9b5 bit-reversed), init 0, no final
// xor. hash/crc64 cannot be used as is: it inverts the state before and
// after every update and rebuilds its slicing tables on every call for a
// polynomial other than ISO and ECMA, so short inputs and the ends of long
// ones go through the same slicing-by-8 algorithm with the tables built
// once (crc64Table), and on amd64 the bulk of a long input is folded with
// carry-less multiplication (foldCLMUL), which checks a backup stream at a
// small fraction of the CPU the table needs.
const (
	crcJones         = 0xad93d23594c935a9 // x^64 + this is P(x); bit i is the coefficient of x^i
	crcJonesReversed = 0x95ac9329ac4bc9b5
)

// clmulMin is the shortest input handed to foldCLMUL; below it the
// table is as fast.
const clmulMin = 128

// clmulConstants are the factors foldCLMUL multiplies by, derived from the
// polynomial rather than copied: x^575, x^511 (moving a 16-byte lane over
// 512 bits) and x^191, x^127 (over 128 bits), mod P, bit-reflected like
// the data.
var clmulConstants = [4]uint64{
	bits.Reverse64(xPowModP(575)), bits.Reverse64(xPowModP(511)),
	bits.Reverse64(xPowModP(191)), bits.Reverse64(xPowModP(127)),
}

// xPowModP returns x^n mod P(x), bit i the coefficient of x^i.
func xPowModP(n int) uint64 {
	r := uint64(1)
	for range n {
		carry := r >> 63
		r <<= 1
		if carry == 1 {
			r ^= crcJones
		}
	}
	return r
}

var crcTables = func() *[8][256]uint64 {
	var t [8][256]uint64
	for i := range 256 {
		c := uint64(i)
		for range 8 {
			if c&1 == 1 {
				c = c>>1 ^ crcJonesReversed
			} else {
				c >>= 1
			}
		}
		t[0][i] = c
	}
	for i := range 256 {
		c := t[0][i]
		for k := 1; k < 8; k++ {
			c = t[0][c&0xff] ^ c>>8
			t[k][i] = c
		}
	}
	return &t
}()

// crc64Update returns the CRC-64/Jones of the bytes already summed into crc
// followed by p.
func crc64Update(crc uint64, p []byte) uint64 {
	if useCLMUL && len(p) >= clmulMin {
		n := len(p) &^ 63
		lo, hi := foldCLMUL(crc, p[:n], &clmulConstants)
		// The folded 16 bytes, read as a message, have the CRC of crc
		// followed by p[:n].
		var b [16]byte
		binary.LittleEndian.PutUint64(b[:8], lo)
		binary.LittleEndian.PutUint64(b[8:], hi)
		crc = crc64Table(0, b[:])
		p = p[n:]
	}
	return crc64Table(crc, p)
}

// crc64Table is crc64Update with the slicing-by-8 tables only.
func crc64Table(crc uint64, p []byte) uint64 {
	t := crcTables
	for len(p) >= 8 {
		crc ^= binary.LittleEndian.Uint64(p)
		crc = t[7][crc&0xff] ^ t[6][crc>>8&0xff] ^ t[5][crc>>16&0xff] ^ t[4][crc>>24&0xff] ^
			t[3][crc>>32&0xff] ^ t[2][crc>>40&0xff] ^ t[1][crc>>48&0xff] ^ t[0][crc>>56]
		p = p[8:]
	}
	for _, b := range p {
		crc = t[0][byte(crc)^b] ^ crc>>8
	}
	return crc
}

// trailerCRC sums a stream whose last 8 bytes are the little-endian CRC of
// everything before them: it keeps those 8 bytes out of the sum until it
// knows they are the last, so neither the stream's length nor its end has to
// be known in advance.
type trailerCRC struct {
	crc  uint64
	n    int64   // bytes seen, trailer included
	tail [8]byte // the last min(n, 8) bytes seen, oldest first
}

func (c *trailerCRC) Write(p []byte) (int, error) {
	held := int(min(c.n, 8))
	c.n += int64(len(p))
	if len(p) >= 8 {
		c.crc = crc64Update(c.crc, c.tail[:held])
		c.crc = crc64Update(c.crc, p[:len(p)-8])
		copy(c.tail[:], p[len(p)-8:])
		return len(p), nil
	}
	// Fewer than 8 new bytes: the oldest held bytes that no longer fit in
	// the window of 8 are summed, the rest shift down.
	buf := append(c.tail[:held:held], p...)
	if over := len(buf) - 8; over > 0 {
		c.crc = crc64Update(c.crc, buf[:over])
		buf = buf[over:]
	}
	copy(c.tail[:], buf)
	return len(p), nil
}

// sum returns the CRC of every byte but the last 8, and those 8 bytes read
// as the little-endian checksum Redis stores; ok is false when fewer than 8
// bytes were seen.
func (c *trailerCRC) sum() (crc, trailer uint64, ok bool) {
	if c.n < 8 {
		return 0, 0, false
	}
	return c.crc, binary.LittleEndian.Uint64(c.tail[:]), true
}
