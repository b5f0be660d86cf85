package backup

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// ErrNoMasterLink is returned when the source is a replica that is not
// connected to its master (Redis refuses SYNC with -NOMASTERLINK): the
// caller should take the snapshot from another instance.
var ErrNoMasterLink = errors.New("source replica has no link to its master")

// Timeouts of the replication connection; variables so a test or a caller
// with unusual instances can change them.
var (
	// DialTimeout bounds connecting to the source.
	DialTimeout = 10 * time.Second
	// IdleTimeout bounds the silence between two reads. Redis sends a
	// newline every second while the fork prepares the snapshot, so only a
	// stuck or unreachable source is that quiet. Time spent blocked on the
	// destination does not count.
	IdleTimeout = 60 * time.Second
)

// eofMarkLen is the size of the random delimiter of a diskless transfer
// (CONFIG_RUN_ID_SIZE in Redis).
const eofMarkLen = 40

// StreamRDB takes a snapshot of the redis-server at addr over the
// replication protocol and writes the RDB to w as it arrives, checking it
// on the way (see VerifyReader). It authenticates with password when it is
// not empty, asks for the RDB only (`REPLCONF rdb-only 1`, Redis 7.0+) and
// accepts both the size-prefixed (disk-based) and the EOF-marked (diskless)
// transfer.
//
// Memory stays bounded whatever the dataset size: the payload is read
// straight into one 256 KiB buffer (plus 16 KiB for the replies before it).
// progress, when not nil, gets the number of bytes written so far, at most
// every 100 ms and once at the end. Cancelling ctx closes the connection.
//
// Errors: ErrNoMasterLink when a replica refuses to sync, ErrCorrupt when
// the bytes fail verification (a CRC64 mismatch included), a "write rdb"
// error wrapping w's error, and connection errors, all wrapped with the
// address. The password never appears in an error.
func StreamRDB(ctx context.Context, addr, password string, w io.Writer, progress func(bytes int64)) (Result, error) {
	start := time.Now()
	res, err := streamRDB(ctx, addr, password, w, progress)
	res.Duration = time.Since(start)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return res, fmt.Errorf("snapshot %s: %w", addr, err)
	}
	return res, nil
}

func streamRDB(ctx context.Context, addr, password string, w io.Writer, progress func(int64)) (Result, error) {
	d := net.Dialer{Timeout: DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Result{}, err
	}
	conn := &idleConn{Conn: nc, idle: IdleTimeout}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	// Replies and the preamble only: the payload is read from conn
	// directly (afterPreamble).
	br := bufio.NewReaderSize(conn, 16<<10)
	if password != "" {
		if err := command(conn, br, "AUTH", password); err != nil {
			return Result{}, fmt.Errorf("auth: %w", err)
		}
	}
	// The diskless form needs the EOF capability; without rdb-only the
	// master would follow the RDB with its command stream and keep a
	// replica's output buffer for us.
	if err := command(conn, br, "REPLCONF", "capa", "eof"); err != nil {
		return Result{}, fmt.Errorf("replconf capa eof: %w", err)
	}
	if err := command(conn, br, "REPLCONF", "rdb-only", "1"); err != nil {
		return Result{}, fmt.Errorf("replconf rdb-only (Redis 7.0 or later is needed): %w", err)
	}
	if _, err := conn.Write(resp("SYNC")); err != nil {
		return Result{}, fmt.Errorf("send sync: %w", err)
	}
	payload, err := syncPreamble(br, afterPreamble{br, conn})
	if err != nil {
		return Result{}, err
	}
	return verify(payload, w, progress)
}

// command sends one command and expects a simple-string reply.
func command(conn net.Conn, br *bufio.Reader, args ...string) error {
	if _, err := conn.Write(resp(args...)); err != nil {
		return err
	}
	line, err := readLine(br)
	if err != nil {
		return err
	}
	if line == "" || line[0] != '+' {
		return fmt.Errorf("redis replied %q", truncate(line, 200))
	}
	return nil
}

func resp(args ...string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.Bytes()
}

func readLine(br *bufio.Reader) (string, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", fmt.Errorf("reply line longer than %d bytes", br.Size())
		}
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("connection closed by the source: %w", io.ErrUnexpectedEOF)
		}
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// syncPreamble reads the reply to SYNC up to the first byte of the RDB.
// While the fork runs, Redis sends bare newlines as keepalives; then comes
// `$<len>` (the RDB was written to disk first) or `$EOF:<40 bytes>`
// (diskless: the same 40 bytes follow the RDB).
// The payload is read from rest, which starts where br is.
func syncPreamble(br *bufio.Reader, rest io.Reader) (io.Reader, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("sync: connection closed by the source before the snapshot: %w", io.ErrUnexpectedEOF)
			}
			return nil, fmt.Errorf("sync: %w", err)
		}
		if b == '\n' {
			continue
		}
		line, err := readLine(br)
		if err != nil {
			return nil, fmt.Errorf("sync: %w", err)
		}
		switch b {
		case '-':
			if strings.HasPrefix(line, "NOMASTERLINK") {
				return nil, fmt.Errorf("sync: %w: %s", ErrNoMasterLink, truncate(line, 200))
			}
			return nil, fmt.Errorf("sync: redis replied -%s", truncate(line, 200))
		case '$':
			if mark, ok := strings.CutPrefix(line, "EOF:"); ok {
				if len(mark) != eofMarkLen {
					return nil, fmt.Errorf("sync: EOF mark of %d bytes, want %d", len(mark), eofMarkLen)
				}
				return newMarkReader(rest, []byte(mark)), nil
			}
			n, err := strconv.ParseInt(line, 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("sync: bad bulk length %q", truncate(line, 100))
			}
			return &sizedReader{r: rest, left: n, size: n}, nil
		default:
			return nil, fmt.Errorf("sync: unexpected reply %q", truncate(string(b)+line, 200))
		}
	}
}

// sizedReader reads the size-prefixed form and tells a connection closed
// early from the end of the payload.
type sizedReader struct {
	r          io.Reader
	left, size int64
}

func (s *sizedReader) Read(p []byte) (int, error) {
	if s.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= int64(n)
	if err != nil && s.left > 0 {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return n, fmt.Errorf("connection lost after %d of %d bytes: %w", s.size-s.left, s.size, err)
	}
	return n, nil
}

// markReader reads the diskless form: the payload ends where the 40-byte
// mark from the preamble arrives. It holds back the last 40 bytes received
// until more come, so the mark is never passed on. Like Redis' own replica,
// it compares the tail after each read; a random 40-byte mark landing on a
// read boundary inside the payload is not a practical concern.
//
// The bytes are read straight into the caller's buffer, behind the tail
// held back from the previous read: only those 40 bytes are ever copied.
type markReader struct {
	r       io.Reader
	mark    []byte
	tail    [eofMarkLen]byte // tail[:held]: received, not yet released
	held    int
	n       int64
	done    bool
	scratch []byte // for reads into buffers too small to hold the tail
	pending []byte // released bytes of scratch not yet returned
}

func newMarkReader(r io.Reader, mark []byte) *markReader {
	return &markReader{r: r, mark: mark}
}

func (m *markReader) Read(p []byte) (int, error) {
	if len(m.pending) > 0 {
		n := copy(p, m.pending)
		m.pending = m.pending[n:]
		return n, nil
	}
	if len(p) <= 2*eofMarkLen {
		if len(p) == 0 {
			return 0, nil
		}
		if m.scratch == nil {
			m.scratch = make([]byte, 4<<10)
		}
		n, err := m.Read(m.scratch)
		if n == 0 {
			return 0, err
		}
		c := copy(p, m.scratch[:n])
		m.pending = m.scratch[c:n]
		return c, nil
	}
	for {
		if m.done {
			return 0, io.EOF
		}
		h := copy(p, m.tail[:m.held])
		n, err := m.r.Read(p[h:])
		m.n += int64(n)
		t := h + n
		if t >= eofMarkLen && bytes.Equal(p[t-eofMarkLen:t], m.mark) {
			m.done, m.held = true, 0
			if t == eofMarkLen {
				return 0, io.EOF
			}
			return t - eofMarkLen, nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("connection lost after %d bytes, before the end mark: %w", m.n, err)
		}
		keep := min(t, eofMarkLen)
		m.held = copy(m.tail[:], p[t-keep:t])
		if t > keep {
			return t - keep, nil
		}
	}
}

// afterPreamble reads what the preamble's buffered reader already holds,
// then the connection directly, so the payload is not copied through that
// buffer.
type afterPreamble struct {
	br   *bufio.Reader
	conn io.Reader
}

func (a afterPreamble) Read(p []byte) (int, error) {
	if a.br.Buffered() > 0 {
		return a.br.Read(p)
	}
	return a.conn.Read(p)
}

// idleConn sets a read deadline before every read, so a silent source is
// detected without bounding the whole transfer.
type idleConn struct {
	net.Conn
	idle time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			err = fmt.Errorf("source silent for %s: %w", c.idle, err)
		}
	}
	return n, err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
