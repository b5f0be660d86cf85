package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// fileTarget stores objects as files under a directory.
type fileTarget struct {
	dir string
}

// tempMarker is in the name of files being written; List skips them.
const tempMarker = ".partial-"

// openFile opens a file:// target, creating its directory when create is
// set; otherwise the directory must exist.
func openFile(u *url.URL, create bool) (*fileTarget, error) {
	if u.Host != "" && u.Host != "localhost" {
		return nil, fmt.Errorf("file URL with host %q: want file:///absolute/dir", u.Host)
	}
	if u.Opaque != "" || !filepath.IsAbs(filepath.FromSlash(u.Path)) {
		return nil, errors.New("file target needs an absolute directory: file:///abs/dir")
	}
	dir := filepath.Clean(filepath.FromSlash(u.Path))
	if !create {
		fi, err := os.Stat(dir)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%s is not a directory", dir)
		}
		return &fileTarget{dir: dir}, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return &fileTarget{dir: dir}, nil
}

func (f *fileTarget) path(key string) string { return filepath.Join(f.dir, filepath.FromSlash(key)) }

func (f *fileTarget) url(key string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(f.path(key))}).String()
}

// Put writes to a temporary file next to the destination and renames it
// into place once r has reached EOF and the data is synced, so a reader
// never sees a partial object and a failure leaves nothing behind.
func (f *fileTarget) Put(ctx context.Context, key string, r io.Reader, _ int64) (string, error) {
	o, err := f.create(key)
	if err != nil {
		return "", err
	}
	// fileObject has no ReadFrom, so the copy uses our 1 MiB buffer
	// rather than File.ReadFrom's 32 KiB one.
	if _, err := io.CopyBuffer(o, ctxReader{ctx, r}, make([]byte, 1<<20)); err != nil {
		o.abort()
		return "", fmt.Errorf("put %s: %w", o.url, err)
	}
	return o.commit(ctx)
}

// fileObject is an object being written: a temporary file next to its
// destination. Run writes a snapshot into it straight from the stream (no
// pipe, no second goroutine); Put copies a reader into it.
//
// Writeback starts as the data comes (every writebackEvery bytes) instead
// of waiting for the final fsync: a large backup would otherwise sit dirty
// in the page cache and the fsync would write all of it at the end.
type fileObject struct {
	f       *os.File
	dst     string
	url     string
	written int64 // bytes written
	flushed int64 // bytes handed to writeback
}

// writebackEvery is how much data is written before its writeback starts.
const writebackEvery = 8 << 20

// create starts an object: nothing is visible under key until commit.
func (f *fileTarget) create(key string) (*fileObject, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("put %s: %w", key, err)
	}
	dst := f.path(key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return nil, fmt.Errorf("put %s: %w", f.url(key), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+tempMarker+"*")
	if err != nil {
		return nil, fmt.Errorf("put %s: %w", f.url(key), err)
	}
	return &fileObject{f: tmp, dst: dst, url: f.url(key)}, nil
}

func (o *fileObject) Write(p []byte) (int, error) {
	n, err := o.f.Write(p)
	o.written += int64(n)
	if o.written-o.flushed >= writebackEvery {
		startWriteback(o.f, o.flushed, o.written-o.flushed)
		o.flushed = o.written
	}
	return n, err
}

// commit syncs the file and renames it into place, unless ctx ended; on
// failure it aborts.
func (o *fileObject) commit(ctx context.Context) (string, error) {
	if err := o.finish(ctx); err != nil {
		o.abort()
		return "", fmt.Errorf("put %s: %w", o.url, err)
	}
	return o.url, nil
}

func (o *fileObject) finish(ctx context.Context) error {
	if err := o.f.Sync(); err != nil {
		return err
	}
	if err := o.f.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(o.f.Name(), o.dst); err != nil {
		return err
	}
	// Make the rename durable; a failure here does not undo the object.
	if d, err := os.Open(filepath.Dir(o.dst)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// abort removes the temporary file.
func (o *fileObject) abort() {
	o.f.Close()
	os.Remove(o.f.Name())
}

func (f *fileTarget) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	file, err := os.Open(f.path(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("get %s: %w", f.url(key), ErrNotFound)
		}
		return nil, fmt.Errorf("get %s: %w", f.url(key), err)
	}
	return file, nil
}

func (f *fileTarget) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if err := os.Remove(f.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", f.url(key), err)
	}
	return nil
}

func (f *fileTarget) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	err := filepath.WalkDir(f.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(f.dir, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() && strings.Count(key, "/") >= 2 {
			// Objects are <cluster>/<shard>/<time>.rdb: nothing deeper
			// is one, so a target pointed at a large tree is not walked.
			return filepath.SkipDir
		}
		if d.IsDir() {
			// Skip directories that cannot hold a match.
			if key != "." && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || strings.Contains(d.Name(), tempMarker) || !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		out = append(out, Object{Key: key, Size: info.Size(), Modified: info.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", f.url(prefix), err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
