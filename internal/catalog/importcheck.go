package catalog

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/redis-manager/redis-manager/internal/spec"
)

// Fields of a sidecar that become a record are checked with the API's own
// rules before they are stored: an object store is not trusted (a crafted
// sidecar once stored the id "../../../tmp/x" and the cluster
// "../../etc\nx" as they were).
var (
	backupIDRE = regexp.MustCompile(`^b_[0-9A-Za-z]{1,64}$`)
	jobIDRE    = regexp.MustCompile(`^j_[0-9A-Za-z]{1,64}$`)
	instanceRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,63}$`)
	crc64RE    = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

// ValidateSidecar checks what a sidecar found under an object key claims.
// keyCluster and keyShard come from the key itself (ParseObjectKey); the
// sidecar must agree with them. It is pure.
func ValidateSidecar(sc Sidecar, keyCluster string, keyShard int) error {
	if err := spec.ValidateName(keyCluster); err != nil {
		return fmt.Errorf("object key: cluster %w", err)
	}
	if keyShard < 0 || keyShard >= spec.MaxShards {
		return fmt.Errorf("object key: shard %d is not between 0 and %d", keyShard, spec.MaxShards-1)
	}
	if sc.Cluster != "" && (sc.Cluster != keyCluster || sc.Shard != keyShard) {
		return fmt.Errorf("sidecar names cluster %q shard %d, its object key %q shard %d", sc.Cluster, sc.Shard, keyCluster, keyShard)
	}
	if sc.ID != "" && !backupIDRE.MatchString(sc.ID) {
		return fmt.Errorf("sidecar id %q is not a backup id (b_…)", sc.ID)
	}
	if sc.Job != "" && !jobIDRE.MatchString(sc.Job) {
		return fmt.Errorf("sidecar job %q is not a job id (j_…)", sc.Job)
	}
	if sc.SourceInstance != "" && !instanceRE.MatchString(sc.SourceInstance) {
		return fmt.Errorf("sidecar sourceInstance %q is not an instance name", sc.SourceInstance)
	}
	if sc.CRC64 != "" && !crc64RE.MatchString(sc.CRC64) {
		return fmt.Errorf("sidecar crc64 %q is not 16 hex digits", sc.CRC64)
	}
	if sc.SizeBytes < 0 || sc.Keys < 0 || sc.ReplOffset < 0 {
		return fmt.Errorf("sidecar sizeBytes, keys or replOffset is negative")
	}
	if !sc.FinishedAt.IsZero() && sc.FinishedAt.Before(sc.StartedAt) {
		return fmt.Errorf("sidecar finishedAt %s is before startedAt %s", sc.FinishedAt, sc.StartedAt)
	}
	if sc.SourceSpec != nil {
		if err := spec.Validate(*sc.SourceSpec); err != nil {
			return fmt.Errorf("sidecar sourceSpec: %w", err)
		}
	}
	return nil
}

// CheckImportSource decides whether a target URL may be imported from:
// only under one of the allowed target URLs (the configured backup target
// and the roots the administrator added). A file:// path must be inside an
// allowed directory (after resolving symbolic links: realpath is the
// caller's resolve, nil for none); an s3:// URL must use the endpoint of
// an allowed s3:// URL (any bucket), so import never sends signed requests
// to an endpoint nobody configured. It is pure apart from resolve.
func CheckImportSource(target string, allowed []string, resolve func(string) (string, error)) error {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("invalid URL")
	}
	var names []string
	for _, a := range allowed {
		au, err := url.Parse(a)
		if err != nil || au.Scheme != u.Scheme {
			if err == nil {
				names = append(names, redactedRoot(au))
			}
			continue
		}
		names = append(names, redactedRoot(au))
		switch u.Scheme {
		case "file":
			if under(u.Path, au.Path, resolve) {
				return nil
			}
		case "s3":
			// Any bucket on a configured endpoint: the requests, signed
			// with the manager's credentials, go where they already go.
			if au.Query().Get("endpoint") == u.Query().Get("endpoint") {
				return nil
			}
		}
	}
	if u.Scheme != "file" && u.Scheme != "s3" {
		return fmt.Errorf("scheme %q: want file:// or s3://", u.Scheme)
	}
	return fmt.Errorf("imports read only under the backup target or an --import-root (%s)", strings.Join(names, ", "))
}

// under reports whether path p is root or inside it, comparing resolved
// paths when resolve is given (a path that does not resolve, because it
// does not exist, is compared as written: opening it fails next).
func under(p, root string, resolve func(string) (string, error)) bool {
	p, root = filepath.Clean(filepath.FromSlash(p)), filepath.Clean(filepath.FromSlash(root))
	if !filepath.IsAbs(p) || !filepath.IsAbs(root) {
		return false
	}
	if resolve != nil {
		if rp, err := resolve(p); err == nil {
			p = rp
		}
		if rr, err := resolve(root); err == nil {
			root = rr
		}
	}
	return p == root || strings.HasPrefix(p, root+string(filepath.Separator))
}

func redactedRoot(u *url.URL) string {
	c := *u
	c.User, c.RawQuery = nil, ""
	if e := u.Query().Get("endpoint"); e != "" {
		c.RawQuery = "endpoint=" + e
	}
	return c.String()
}
