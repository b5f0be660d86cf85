package server

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Timeouts of the API server. A request must send its headers within
// readHeaderTimeout and its whole body within readTimeout (bodies are at most
// MaxBodyBytes, so a client trickling a byte at a time is dropped instead of
// holding a connection for ever); an idle keep-alive connection is closed
// after idleTimeout. writeTimeout bounds a response; a future streaming
// endpoint extends its own deadline with http.ResponseController.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 20 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 60 * time.Second
)

// newHTTPServer is the API's http.Server with its limits.
func newHTTPServer(h http.Handler, lim *connLimiter) *http.Server {
	return &http.Server{
		Handler:           lim.track(h),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ConnContext:       lim.connContext,
	}
}

// defaultMaxConnections leaves half of the process's file limit to the
// store, the Redis clients and the files the manager opens: the API can
// never starve them (the failure seen with 250 slow connections and a
// 200-file limit was `accept4: too many open files`).
func defaultMaxConnections() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 512
	}
	n := int(r.Cur / 2)
	return max(16, min(n, 4096))
}

// connLimiter is a listener that holds at most max connections open. When
// a new connection arrives at the limit, one is closed to make room: the
// oldest that is not running a handler (still sending its headers, or idle
// between requests), else the oldest whose handler has run for longer than
// stuckAfter (every API call is quick, since long work runs as jobs: such a
// request is a body that does not arrive). Only when every connection is in
// a fresh handler is the new one closed at once. So slow or idle clients
// delay nobody for long, and the process never runs out of files.
type connLimiter struct {
	net.Listener
	max        int
	stuckAfter time.Duration

	mu    sync.Mutex
	conns map[*limitedConn]struct{}

	evicted atomic.Int64 // idle or header-less connections closed to make room
	refused atomic.Int64 // new connections closed because every slot was busy
}

func newConnLimiter(ln net.Listener, max int) *connLimiter {
	return &connLimiter{Listener: ln, max: max, stuckAfter: time.Second, conns: map[*limitedConn]struct{}{}}
}

type limitedConn struct {
	net.Conn
	l     *connLimiter
	since time.Time
	busy  bool // in a handler since `since`; guarded by l.mu
	once  sync.Once
}

func (c *limitedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// Accept returns the next connection, making room for it first.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		lc := &limitedConn{Conn: c, l: l, since: time.Now()}
		l.mu.Lock()
		var victim *limitedConn
		if len(l.conns) >= l.max {
			victim = l.victimLocked(lc.since)
			if victim == nil {
				l.mu.Unlock()
				l.refused.Add(1)
				c.Close()
				continue
			}
			delete(l.conns, victim)
		}
		l.conns[lc] = struct{}{}
		l.mu.Unlock()
		if victim != nil {
			l.evicted.Add(1)
			victim.Conn.Close()
		}
		return lc, nil
	}
}

// victimLocked picks the connection to close to make room, or nil.
func (l *connLimiter) victimLocked(now time.Time) *limitedConn {
	var idle, stuck *limitedConn
	for o := range l.conns {
		switch {
		case !o.busy:
			if idle == nil || o.since.Before(idle.since) {
				idle = o
			}
		case now.Sub(o.since) > l.stuckAfter:
			if stuck == nil || o.since.Before(stuck.since) {
				stuck = o
			}
		}
	}
	if idle != nil {
		return idle
	}
	return stuck
}

// Open is the number of connections held now.
func (l *connLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

type connKey struct{}

func (l *connLimiter) connContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if lc, ok := c.(*limitedConn); ok {
		return context.WithValue(ctx, connKey{}, lc)
	}
	return ctx
}

// track marks a connection busy while a handler runs, so it is never
// closed to make room mid-request.
func (l *connLimiter) track(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if lc, ok := r.Context().Value(connKey{}).(*limitedConn); ok {
			l.setBusy(lc, true)
			defer l.setBusy(lc, false)
		}
		next.ServeHTTP(w, r)
	})
}

func (l *connLimiter) setBusy(c *limitedConn, busy bool) {
	l.mu.Lock()
	c.busy = busy
	c.since = time.Now()
	l.mu.Unlock()
}
