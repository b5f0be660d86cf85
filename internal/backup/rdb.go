package backup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// ErrCorrupt marks an RDB that fails verification: a bad header, a
// structure that does not parse, a truncated payload or a CRC64 mismatch.
// Such an object must never be restored.
var ErrCorrupt = errors.New("corrupt rdb")

// Result describes one verified RDB snapshot.
type Result struct {
	// Bytes is the size of the RDB payload, checksum trailer included.
	Bytes int64
	// CRC64 is the CRC-64/Jones of every byte before the trailer, as 16
	// lowercase hex digits; it equals the trailer Redis wrote unless
	// NoChecksum is set.
	CRC64 string
	// NoChecksum is true when the source saved the RDB with
	// `rdbchecksum no` (an all-zero trailer): nothing in the stream could be
	// checked, and CRC64 is our own sum of the bytes, for a later
	// verification of the stored object to compare against.
	NoChecksum bool
	// RDBVersion is the format version from the REDIS00xx header.
	RDBVersion int
	// RedisVersion is the redis-ver AUX field, when the writer set it.
	RedisVersion string
	// Keys is the number of keys over all databases.
	Keys int64
	// KeysCounted is true when Keys was counted entry by entry, which also
	// checked the structure of every value. It is false when the stream
	// holds a value type this parser does not know (a Redis newer than
	// 7.2): Keys is then the sum of the RESIZEDB hints, and only the header
	// and the CRC64 were checked.
	KeysCounted bool
	// Duration is how long the transfer (StreamRDB), the whole backup with
	// its upload and sidecar (Run) or the verification (VerifyReader) took.
	Duration time.Duration
	// Object is the URL of the stored object; set by Run only.
	Object string
}

// VerifyReader reads a whole RDB from r and checks it the way StreamRDB
// checks a stream: header, structure, key count, trailer CRC64. A nil error
// means the bytes are a complete RDB; compare Result.CRC64 with the recorded
// one (this catches an object replaced by another valid RDB, and is the only
// check when Result.NoChecksum is set).
func VerifyReader(r io.Reader) (Result, error) {
	return VerifyCopy(io.Discard, r)
}

// VerifyCopy is VerifyReader that also copies every byte to w as it passes,
// for a restore that downloads an object into a dump.rdb and must not trust
// it before the end: on error, w holds a partial or corrupt copy the caller
// discards.
func VerifyCopy(w io.Writer, r io.Reader) (Result, error) {
	start := time.Now()
	res, err := verify(r, w, nil)
	res.Duration = time.Since(start)
	return res, err
}

// CheckRecorded checks a verified RDB against what its backup recorded: a
// valid RDB that is not the one backed up (replaced, truncated at a valid
// point) is refused with ErrCorrupt. A zero size or empty CRC64 is not
// checked.
func CheckRecorded(res Result, size int64, crc64 string) error {
	if crc64 != "" && res.CRC64 != crc64 {
		return fmt.Errorf("%w: CRC64 %s, the record says %s", ErrCorrupt, res.CRC64, crc64)
	}
	if size > 0 && res.Bytes != size {
		return fmt.Errorf("%w: %d bytes, the record says %d", ErrCorrupt, res.Bytes, size)
	}
	return nil
}

// Opcodes and value types of the RDB format (Redis src/rdb.h).
const (
	opSlotInfo       = 0xF4
	opFunction2      = 0xF5
	opFunctionPreGA  = 0xF6
	opModuleAux      = 0xF7
	opIdle           = 0xF8
	opFreq           = 0xF9
	opAux            = 0xFA
	opResizeDB       = 0xFB
	opExpireTimeMS   = 0xFC
	opExpireTime     = 0xFD
	opSelectDB       = 0xFE
	opEOF            = 0xFF
	typeString       = 0
	typeList         = 1
	typeSet          = 2
	typeZSet         = 3
	typeHash         = 4
	typeZSet2        = 5
	typeModule2      = 7
	typeHashZipmap   = 9
	typeListZiplist  = 10
	typeSetIntset    = 11
	typeZSetZiplist  = 12
	typeHashZiplist  = 13
	typeListQuick    = 14
	typeStream       = 15
	typeHashLP       = 16
	typeZSetLP       = 17
	typeListQuick2   = 18
	typeStream2      = 19
	typeSetLP        = 20
	typeStream3      = 21
	moduleOpEOF      = 0
	moduleOpSInt     = 1
	moduleOpUInt     = 2
	moduleOpFloat    = 3
	moduleOpDouble   = 4
	moduleOpString   = 5
	encInt8          = 0
	encInt16         = 1
	encInt32         = 2
	encLZF           = 3
	maxSaneLength    = 1 << 40
	lastKnownVersion = 11 // Redis 7.2: every type up to here is walked, and RESIZEDB is exact
)

// errUnknownType stops the walk at a value type this parser does not know;
// verify falls back on the RESIZEDB hints.
var errUnknownType = errors.New("unknown rdb value type")

// verify reads an RDB from src, writing every byte to dst as it passes,
// and checks it. Errors from src and dst come back as they are (the caller
// knows what it was reading from); problems of the bytes wrap ErrCorrupt.
func verify(src io.Reader, dst io.Writer, progress func(int64)) (res Result, err error) {
	t := &tee{src: src, dst: dst, progress: progress}
	defer func() { res.Bytes = t.n }() // on failure: how far it got
	br := bufio.NewReaderSize(t, 256<<10)
	wk := &walker{r: br}
	werr := wk.walk(&res)
	consumed := t.n - int64(br.Buffered())
	switch {
	case werr == nil:
		res.KeysCounted = true
		if wk.sawResize && res.RDBVersion <= lastKnownVersion && wk.keys != wk.resize {
			return res, fmt.Errorf("%w: RESIZEDB announces %d keys, %d found", ErrCorrupt, wk.resize, wk.keys)
		}
		res.Keys = wk.keys
	case errors.Is(werr, errUnknownType):
		// A newer Redis: keep the bytes flowing and check what we can.
		res.Keys = wk.resize
	default:
		return res, werr
	}
	// Whatever follows the trailer still passes through the tee, so the
	// CRC window ends at the real end of the stream.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return res, err
	}
	if werr == nil && consumed != t.n {
		return res, fmt.Errorf("%w: %d bytes after the checksum", ErrCorrupt, t.n-consumed)
	}
	crc, trailer, ok := t.crc.sum()
	if !ok {
		return res, fmt.Errorf("%w: truncated at byte %d", ErrCorrupt, t.n)
	}
	res.CRC64 = fmt.Sprintf("%016x", crc)
	switch {
	case trailer == 0:
		res.NoChecksum = true
	case trailer != crc:
		return res, fmt.Errorf("%w: crc64 %016x, trailer says %016x", ErrCorrupt, crc, trailer)
	}
	if progress != nil {
		progress(t.n)
	}
	return res, nil
}

// tee hands the walker what it reads from src, after writing it to dst and
// summing it.
type tee struct {
	src      io.Reader
	dst      io.Writer
	crc      trailerCRC
	n        int64
	progress func(int64)
	last     time.Time
}

func (t *tee) Read(p []byte) (int, error) {
	n, err := t.src.Read(p)
	if n > 0 {
		if _, werr := t.dst.Write(p[:n]); werr != nil {
			return 0, &writeError{werr}
		}
		t.crc.Write(p[:n])
		t.n += int64(n)
		if t.progress != nil {
			if now := time.Now(); now.Sub(t.last) >= 100*time.Millisecond {
				t.last = now
				t.progress(t.n)
			}
		}
	}
	return n, err
}

// writeError carries a failure of the destination through the walker.
type writeError struct{ err error }

func (e *writeError) Error() string { return "write rdb: " + e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// walker parses the RDB structure far enough to count keys and check that
// every length adds up; string payloads are skipped, never decoded.
type walker struct {
	r         *bufio.Reader
	keys      int64
	resize    int64
	sawResize bool
}

func (w *walker) walk(res *Result) error {
	var hdr [9]byte
	if _, err := io.ReadFull(w.r, hdr[:]); err != nil {
		return w.fail(err, "header")
	}
	if string(hdr[:5]) != "REDIS" {
		return fmt.Errorf("%w: bad header %q", ErrCorrupt, hdr[:])
	}
	v, err := strconv.Atoi(string(hdr[5:]))
	if err != nil || v < 5 {
		return fmt.Errorf("%w: unsupported version %q", ErrCorrupt, hdr[5:])
	}
	res.RDBVersion = v
	for {
		op, err := w.r.ReadByte()
		if err != nil {
			return w.fail(err, "opcode")
		}
		switch op {
		case opEOF:
			if _, err := w.r.Discard(8); err != nil {
				return w.fail(err, "checksum")
			}
			return nil
		case opAux:
			k, err := w.smallString()
			if err != nil {
				return err
			}
			val, err := w.smallString()
			if err != nil {
				return err
			}
			if k == "redis-ver" {
				res.RedisVersion = val
			}
		case opResizeDB:
			n, err := w.length()
			if err != nil {
				return err
			}
			if _, err := w.length(); err != nil {
				return err
			}
			w.resize += int64(n)
			w.sawResize = true
		case opSelectDB, opIdle:
			if _, err := w.length(); err != nil {
				return err
			}
		case opSlotInfo:
			if err := w.lengths(3); err != nil {
				return err
			}
		case opExpireTime:
			err = w.skip(4)
		case opExpireTimeMS:
			err = w.skip(8)
		case opFreq:
			err = w.skip(1)
		case opFunction2:
			err = w.skipString()
		case opModuleAux:
			// module id, "when" opcode, "when", then the module's values.
			if err := w.lengths(3); err != nil {
				return err
			}
			err = w.skipModuleValue()
		case opFunctionPreGA:
			return errUnknownType
		default:
			if err := w.skipString(); err != nil { // the key
				return err
			}
			if err := w.skipValue(op); err != nil {
				return err
			}
			w.keys++
		}
		if err != nil {
			return err
		}
	}
}

func (w *walker) skipValue(typ byte) error {
	switch typ {
	case typeString, typeHashZipmap, typeListZiplist, typeSetIntset, typeZSetZiplist,
		typeHashZiplist, typeHashLP, typeZSetLP, typeSetLP:
		return w.skipString()
	case typeList, typeSet, typeListQuick:
		return w.skipStrings(1)
	case typeHash:
		return w.skipStrings(2)
	case typeZSet, typeZSet2:
		n, err := w.length()
		if err != nil {
			return err
		}
		for range n {
			if err := w.skipString(); err != nil {
				return err
			}
			if typ == typeZSet2 {
				err = w.skip(8)
			} else {
				err = w.skipTextDouble()
			}
			if err != nil {
				return err
			}
		}
		return nil
	case typeListQuick2:
		n, err := w.length()
		if err != nil {
			return err
		}
		for range n {
			if _, err := w.length(); err != nil { // container: plain or packed
				return err
			}
			if err := w.skipString(); err != nil {
				return err
			}
		}
		return nil
	case typeModule2:
		if _, err := w.length(); err != nil { // module id
			return err
		}
		return w.skipModuleValue()
	case typeStream, typeStream2, typeStream3:
		return w.skipStream(typ)
	}
	return errUnknownType
}

// skipStream follows rdbSaveObject's layout of a stream.
func (w *walker) skipStream(typ byte) error {
	if err := w.skipStrings(2); err != nil { // listpacks: node key, listpack
		return err
	}
	n := 3 // length, last id
	if typ >= typeStream2 {
		n += 5 // first id, max deleted id, entries added
	}
	if err := w.lengths(n); err != nil {
		return err
	}
	groups, err := w.length()
	if err != nil {
		return err
	}
	for range groups {
		if err := w.skipString(); err != nil { // name
			return err
		}
		n := 2 // last id
		if typ >= typeStream2 {
			n++ // entries read
		}
		if err := w.lengths(n); err != nil {
			return err
		}
		pel, err := w.length()
		if err != nil {
			return err
		}
		for range pel {
			if err := w.skip(16 + 8); err != nil { // id, delivery time
				return err
			}
			if _, err := w.length(); err != nil { // delivery count
				return err
			}
		}
		consumers, err := w.length()
		if err != nil {
			return err
		}
		for range consumers {
			if err := w.skipString(); err != nil { // name
				return err
			}
			times := int64(8) // seen time
			if typ >= typeStream3 {
				times += 8 // active time
			}
			if err := w.skip(times); err != nil {
				return err
			}
			pel, err := w.length()
			if err != nil {
				return err
			}
			if err := w.skip(16 * int64(pel)); err != nil {
				return err
			}
		}
	}
	return nil
}

// skipModuleValue follows rdbLoadCheckModuleValue: typed fields up to the
// EOF opcode.
func (w *walker) skipModuleValue() error {
	for {
		op, err := w.length()
		if err != nil {
			return err
		}
		switch op {
		case moduleOpEOF:
			return nil
		case moduleOpSInt, moduleOpUInt:
			_, err = w.length()
		case moduleOpFloat:
			err = w.skip(4)
		case moduleOpDouble:
			err = w.skip(8)
		case moduleOpString:
			err = w.skipString()
		default:
			return fmt.Errorf("%w: module value opcode %d", ErrCorrupt, op)
		}
		if err != nil {
			return err
		}
	}
}

// skipTextDouble skips a double saved as text (the old ZSET type): a
// length byte, or 253-255 for nan and the infinities.
func (w *walker) skipTextDouble() error {
	b, err := w.r.ReadByte()
	if err != nil {
		return w.fail(err, "double")
	}
	if b >= 253 {
		return nil
	}
	return w.skip(int64(b))
}

// skipStrings skips a length, then per*length strings.
func (w *walker) skipStrings(per uint64) error {
	n, err := w.length()
	if err != nil {
		return err
	}
	for range n * per {
		if err := w.skipString(); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) lengths(n int) error {
	for range n {
		if _, err := w.length(); err != nil {
			return err
		}
	}
	return nil
}

// length reads a plain length (rdbLoadLen); an encoded-string marker here
// is corruption.
func (w *walker) length() (uint64, error) {
	n, enc, err := w.lengthOrEnc()
	if err == nil && enc {
		err = fmt.Errorf("%w: string encoding where a length belongs", ErrCorrupt)
	}
	return n, err
}

// lengthOrEnc reads rdbLoadLenByRef's format; enc reports the 11xxxxxx
// form, where n is the encoding of a special string.
func (w *walker) lengthOrEnc() (n uint64, enc bool, err error) {
	b, err := w.r.ReadByte()
	if err != nil {
		return 0, false, w.fail(err, "length")
	}
	switch b >> 6 {
	case 0:
		return uint64(b & 0x3f), false, nil
	case 1:
		b2, err := w.r.ReadByte()
		if err != nil {
			return 0, false, w.fail(err, "length")
		}
		return uint64(b&0x3f)<<8 | uint64(b2), false, nil
	case 3:
		return uint64(b & 0x3f), true, nil
	}
	var buf [8]byte
	size := 0
	switch b {
	case 0x80:
		size = 4
	case 0x81:
		size = 8
	default:
		return 0, false, fmt.Errorf("%w: length prefix %#x", ErrCorrupt, b)
	}
	if _, err := io.ReadFull(w.r, buf[:size]); err != nil {
		return 0, false, w.fail(err, "length")
	}
	for _, c := range buf[:size] {
		n = n<<8 | uint64(c)
	}
	return n, false, nil
}

func (w *walker) skipString() error {
	n, enc, err := w.lengthOrEnc()
	if err != nil {
		return err
	}
	if !enc {
		return w.skip(int64(n))
	}
	return w.skipEncoded(n)
}

// skipEncoded skips the body of a special string: an integer or an LZF
// block.
func (w *walker) skipEncoded(enc uint64) error {
	switch enc {
	case encInt8:
		return w.skip(1)
	case encInt16:
		return w.skip(2)
	case encInt32:
		return w.skip(4)
	case encLZF:
		clen, err := w.length()
		if err != nil {
			return err
		}
		if _, err := w.length(); err != nil { // uncompressed length
			return err
		}
		return w.skip(int64(clen))
	}
	return fmt.Errorf("%w: string encoding %d", ErrCorrupt, enc)
}

// smallString reads an AUX string: plain strings up to 1 KiB and integers
// are returned; compressed or longer ones are skipped and read as "".
func (w *walker) smallString() (string, error) {
	n, enc, err := w.lengthOrEnc()
	if err != nil {
		return "", err
	}
	if !enc {
		if n > 1024 {
			return "", w.skip(int64(n))
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(w.r, buf); err != nil {
			return "", w.fail(err, "string")
		}
		return string(buf), nil
	}
	var size int
	switch n {
	case encInt8:
		size = 1
	case encInt16:
		size = 2
	case encInt32:
		size = 4
	default:
		return "", w.skipEncoded(n)
	}
	var buf [4]byte
	if _, err := io.ReadFull(w.r, buf[:size]); err != nil {
		return "", w.fail(err, "string")
	}
	var v int64
	switch size {
	case 1:
		v = int64(int8(buf[0]))
	case 2:
		v = int64(int16(uint16(buf[0]) | uint16(buf[1])<<8))
	case 4:
		v = int64(int32(uint32(buf[0]) | uint32(buf[1])<<8 | uint32(buf[2])<<16 | uint32(buf[3])<<24))
	}
	return strconv.FormatInt(v, 10), nil
}

// skip discards n bytes; lengths are not bounded when read (stream IDs
// and times are saved as lengths), only when used as a size.
func (w *walker) skip(n int64) error {
	if n < 0 || n > maxSaneLength {
		return fmt.Errorf("%w: length %d", ErrCorrupt, n)
	}
	for n > 0 {
		step := int(min(n, 1<<30))
		if _, err := w.r.Discard(step); err != nil {
			return w.fail(err, "payload")
		}
		n -= int64(step)
	}
	return nil
}

// fail turns the end of the input into ErrCorrupt (the RDB stops before its
// EOF opcode); other errors come from the reader or the writer and go back
// as they are. Only the bare sentinels mean the end: a source that lost its
// connection reports that with an error of its own, which may wrap
// io.ErrUnexpectedEOF but is not a corrupt RDB.
func (w *walker) fail(err error, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF { //nolint:errorlint // identity is the point
		return fmt.Errorf("%w: truncated in %s", ErrCorrupt, what)
	}
	return err
}
