// Package storetest opens real stores for other packages' tests.
package storetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/redis-manager/redis-manager/internal/store"
)

// SQLite opens a SQLite store in dir (its database and secret key files)
// and closes it when the test ends.
func SQLite(tb testing.TB, dir string) store.Store {
	tb.Helper()
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(dir, "manager.db"), filepath.Join(dir, "secret.key"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}
