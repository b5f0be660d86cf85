package store

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestMariaDBAlsoOn: testenv.StartMariaDBAlsoOn serves the store on the
// extra address it names in the DSN (127.0.0.2 here; 10.217.0.1, the
// address pods reach, in internal/e2ek8s), besides loopback.
func TestMariaDBAlsoOn(t *testing.T) {
	dsn := testenv.StartMariaDBAlsoOn(t, "127.0.0.2")
	if !strings.Contains(dsn, "@127.0.0.2:") {
		t.Fatalf("DSN %s does not name the extra address", redact(dsn))
	}
	st, err := Open(t.Context(), dsn, filepath.Join(t.TempDir(), "key"))
	if err != nil {
		t.Fatalf("open the store through 127.0.0.2: %v", err)
	}
	defer st.Close()
	if _, _, err := st.AcquireLease(t.Context(), "x", "me", 1e9); err != nil {
		t.Fatal(err)
	}
}

func redact(dsn string) string {
	at := strings.LastIndex(dsn, "@")
	return "mysql://…" + dsn[at:]
}
