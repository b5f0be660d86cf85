package server

import (
	"strings"
	"testing"
	"time"
)

func TestElectionCheck(t *testing.T) {
	ok := Election{Mode: "kubernetes", LeaseName: "rm", LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
	for _, tc := range []struct {
		name     string
		e        Election
		platform string
		sqlite   bool
		err      string // "" when valid
	}{
		{"store default", Election{Mode: "store"}, "local", true, ""},
		{"kubernetes", ok, "kubernetes", false, ""},
		{"unknown mode", Election{Mode: "etcd"}, "kubernetes", false, `want store or kubernetes`},
		{"kubernetes on local", ok, "local", false, "needs --platform kubernetes"},
		{"kubernetes on sqlite", ok, "kubernetes", true, "MySQL"},
		{"no lease name", func() Election { e := ok; e.LeaseName = ""; return e }(), "kubernetes", false, "--lease-name"},
		{"deadline not below duration", func() Election { e := ok; e.RenewDeadline = 15 * time.Second; return e }(), "kubernetes", false, "duration > renew deadline"},
		{"retry too close to deadline", func() Election { e := ok; e.RetryPeriod = 9 * time.Second; return e }(), "kubernetes", false, "1.2 × retry period"},
		{"no retry", func() Election { e := ok; e.RetryPeriod = 0; return e }(), "kubernetes", false, "> 0"},
	} {
		err := tc.e.check(tc.platform, tc.sqlite)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.err)
		}
	}
}
