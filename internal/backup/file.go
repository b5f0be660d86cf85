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
	if err := checkKey(key); err != nil {
		return "", fmt.Errorf("put %s: %w", key, err)
	}
	if err := f.put(ctx, f.path(key), r); err != nil {
		return "", fmt.Errorf("put %s: %w", f.url(key), err)
	}
	return f.url(key), nil
}

func (f *fileTarget) put(ctx context.Context, dst string, r io.Reader) (err error) {
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dst)+tempMarker+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// A plain writer (not *os.File) so the copy uses our 1 MiB buffer
	// rather than File.ReadFrom's 32 KiB one.
	if _, err := io.CopyBuffer(struct{ io.Writer }{tmp}, ctxReader{ctx, r}, make([]byte, 1<<20)); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return err
	}
	// Make the rename durable; a failure here does not undo the object.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
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
