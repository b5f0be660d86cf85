package controller

import (
	"os"
	"testing"
	"time"
)

// The report in testdata is a real one: redis-server 7.0 with
// enable-debug-command, crashed by DEBUG SEGFAULT (trimmed).
func TestParseCrashReport(t *testing.T) {
	t.Parallel()
	log, err := os.ReadFile("testdata/crash-report.log")
	if err != nil {
		t.Fatal(err)
	}
	r, ok := ParseCrashReport(log)
	if !ok {
		t.Fatal("no report found")
	}
	if r.Command != "debug segfault" || len(r.Argv) != 2 || r.Key != "" {
		t.Fatalf("report %+v", r)
	}
	if r.Signal != "crashed by signal: 11, si_code: 2" {
		t.Fatalf("signal %q", r.Signal)
	}
	// A key the crashing command named, as Redis logs it.
	withKey := append(append([]byte{}, log...), []byte("\n=== REDIS BUG REPORT START: Cut & paste starting from here ===\n"+
		"1:M 30 Nov 2026 11:47:40.218 # === ASSERTION FAILED ===\n------ CURRENT CLIENT INFO ------\nid=5 cmd=hset\nargv[0]: '\"hset\"'\nargv[1]: '\"user:42\"'\n"+
		"1:M 30 Nov 2026 11:47:40.218 # key 'user:42' found in DB containing the following object:\n\n------ MODULES INFO OUTPUT ------\n")...)
	r, ok = ParseCrashReport(withKey)
	if !ok || r.Command != "hset user:42" || r.Key != "user:42" {
		t.Fatalf("report %+v %v", r, ok)
	}
	// Started again after the crash: that run did not crash.
	if _, ok := ParseCrashReport(append(append([]byte{}, log...), []byte("\n1:M 30 Nov 2026 11:48:00.000 * Ready to accept connections\n")...)); ok {
		t.Fatal("an old report taken for the last run's")
	}
	if _, ok := ParseCrashReport([]byte("1:M * Ready to accept connections\n")); ok {
		t.Fatal("a report found in a log without one")
	}
}

func TestAckFloorApplies(t *testing.T) {
	t.Parallel()
	f := ackFloor{offset: 100, replids: []string{"old", "new"}, at: time.Now()}
	for _, c := range []struct {
		replid string
		want   bool
	}{{"old", true}, {"new", true}, {"", true}, {"other", false}} {
		if got := f.applies(c.replid); got != c.want {
			t.Errorf("applies(%q) = %v, want %v", c.replid, got, c.want)
		}
	}
	f.at = time.Now().Add(-ackFloorFor - time.Second)
	if f.applies("old") {
		t.Error("an expired floor applies")
	}
}
