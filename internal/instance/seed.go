package instance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/redis-manager/redis-manager/internal/backup"
	"github.com/redis-manager/redis-manager/internal/platform"
)

// FetchSeed fetches a restore's source into dir/dump.rdb, where the
// instance's data lives, before its first boot: through a temporary file,
// checking the RDB as it arrives (header, structure, CRC64) and against its
// record (backup.CheckRecorded), renamed into place only once complete,
// checked and synced. On any error nothing is left behind.
func FetchSeed(ctx context.Context, dir string, src platform.SeedSource) (err error) {
	t, err := backup.OpenTarget(ctx, src.TargetURL)
	if err != nil {
		return err
	}
	rc, err := t.Get(ctx, src.Key)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".dump.rdb.seed-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// Buffered: the verifier writes in small pieces.
	w := bufio.NewWriterSize(tmp, 1<<20)
	r := &progressReader{r: ctxReader{ctx, rc}, report: src.Progress}
	res, err := backup.VerifyCopy(w, r)
	r.flush()
	if err == nil {
		err = backup.CheckRecorded(res, src.Size, src.CRC64)
	}
	if err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, "dump.rdb")); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// HasData tells whether dir holds data of a previous boot (an RDB or an
// AOF): a seed is for the first boot only.
func HasData(dir string) bool {
	for _, f := range []string{"dump.rdb", "appendonly"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// progressReader tells report the bytes read so far, at most every 100 ms
// and once more at the end (flush).
type progressReader struct {
	r      io.Reader
	report func(int64)
	n      int64
	last   time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.report != nil && time.Since(p.last) >= 100*time.Millisecond {
		p.last = time.Now()
		p.report(p.n)
	}
	return n, err
}

func (p *progressReader) flush() {
	if p.report != nil {
		p.report(p.n)
	}
}

// ctxReader stops a copy when ctx ends, for readers that do not watch it.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// SeedFile is a restore's seed as a platform hands it to a pod (a file of
// the cluster's ConfigMap): platform.SeedSource without its callback.
type SeedFile struct {
	TargetURL string `json:"targetURL"`
	Key       string `json:"key"`
	Size      int64  `json:"size,omitempty"`
	CRC64     string `json:"crc64,omitempty"`
}

// SeedFileOf is src as a SeedFile.
func SeedFileOf(src platform.SeedSource) SeedFile {
	return SeedFile{TargetURL: src.TargetURL, Key: src.Key, Size: src.Size, CRC64: src.CRC64}
}

// Source is the seed as a platform.SeedSource.
func (s SeedFile) Source() platform.SeedSource {
	return platform.SeedSource{TargetURL: s.TargetURL, Key: s.Key, Size: s.Size, CRC64: s.CRC64}
}

// ReadSeedFile reads a SeedFile; ok is false when there is none.
func ReadSeedFile(path string) (s SeedFile, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return SeedFile{}, false, nil
	}
	if err != nil {
		return SeedFile{}, false, err
	}
	if err := json.Unmarshal(b, &s); err != nil || s.TargetURL == "" || s.Key == "" {
		return SeedFile{}, false, fmt.Errorf("seed file %s: want JSON with targetURL and key (%v)", path, err)
	}
	return s, true, nil
}

// seedFailed writes a failed seed's error, with its kind (corrupt,
// not-found), to --seed-error-file as a task protocol line: on Kubernetes
// the container's termination message, which the platform reads to fail
// the restore at once with what was wrong.
func (o runOptions) seedFailed(err error) error {
	if o.seedError != "" {
		te := TaskErrorOf(err)
		if b, jerr := json.Marshal(platform.TaskLine{Error: &te}); jerr == nil {
			_ = os.WriteFile(o.seedError, b, 0o644)
		}
	}
	return err
}
