package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Run takes a snapshot of the redis-server at addr and stores it in t under
// key, then writes the JSON sidecar (SidecarKey(key), see Metadata; cluster
// and shard come from key when it was built by ObjectKey).
//
// The RDB flows from the socket to the target, checked on the way: into a
// file target straight from the goroutine that reads the socket, into any
// other target through a pipe; nothing is buffered beyond the target's own
// parts. When the
// stream fails or does not verify, the target never completes the object
// (Put aborts); when the sidecar cannot be written, the object is deleted.
// Either way the error says which step failed. sizeHint and progress are
// those of Target.Put and StreamRDB. On success Result.Object is the
// object's URL and Result.Duration covers the whole backup.
func Run(ctx context.Context, addr, password string, t Target, key string, sizeHint int64, progress func(int64)) (Result, error) {
	started := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var res Result
	var err error
	if ft, ok := t.(*fileTarget); ok {
		res, err = streamToFile(ctx, addr, password, ft, key, progress)
	} else {
		res, err = streamToTarget(ctx, addr, password, t, key, sizeHint, progress)
	}
	if err != nil {
		return res, fmt.Errorf("backup %s: %w", key, err)
	}

	m := NewMetadata(key, addr, res, started, time.Now())
	err = WriteMetadata(ctx, t, m)
	res.Duration = time.Since(started)
	if err != nil {
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer dcancel()
		if derr := t.Delete(dctx, key); derr != nil {
			return res, fmt.Errorf("backup %s: %w (and delete object: %v)", key, err, derr)
		}
		return res, fmt.Errorf("backup %s: %w", key, err)
	}
	return res, nil
}

// streamToFile writes the snapshot into a file target from the goroutine
// that reads it: each read from the socket is checked and written before
// the next, with no pipe and no hand-off to another goroutine.
func streamToFile(ctx context.Context, addr, password string, ft *fileTarget, key string, progress func(int64)) (Result, error) {
	o, err := ft.create(key)
	if err != nil {
		return Result{}, err
	}
	res, err := StreamRDB(ctx, addr, password, o, progress)
	if err != nil {
		o.abort()
		var we *writeError
		if errors.As(err, &we) {
			// The file failed (a full disk): say so, as Put does.
			return res, fmt.Errorf("put %s: %w", o.url, we.err)
		}
		return res, err
	}
	res.Object, err = o.commit(ctx)
	return res, err
}

// streamToTarget pipes StreamRDB into Target.Put.
func streamToTarget(ctx context.Context, addr, password string, t Target, key string, sizeHint int64, progress func(int64)) (Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	type putResult struct {
		url string
		err error
	}
	done := make(chan putResult, 1)
	go func() {
		url, err := t.Put(ctx, key, pr, sizeHint)
		// Unblock the stream if Put returned before reading everything.
		if err != nil {
			pr.CloseWithError(err)
		} else {
			pr.CloseWithError(errors.New("target stopped reading"))
		}
		done <- putResult{url, err}
	}()

	res, serr := StreamRDB(ctx, addr, password, pw, progress)
	if serr != nil {
		// Put sees the error instead of io.EOF and aborts.
		pw.CloseWithError(serr)
		cancel()
	} else {
		pw.Close()
	}
	put := <-done
	switch {
	case serr != nil && put.err != nil && errors.Is(serr, put.err) && !errors.Is(put.err, serr):
		// The target failed first; the stream only saw the closed pipe.
		return res, put.err
	case serr != nil:
		return res, serr
	case put.err != nil:
		return res, put.err
	}
	res.Object = put.url
	return res, nil
}
