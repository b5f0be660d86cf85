package controller

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/redis-manager/redis-manager/internal/platform"
	"github.com/redis-manager/redis-manager/internal/spec"
	"github.com/redis-manager/redis-manager/internal/store"
)

// A shard whose masters keep dying — a command that crashes Redis, retried
// by clients on each new master — is in a crash loop: crashLoopDeaths
// master deaths within crashLoopWindow. The manager keeps failing it over
// (each failover as fast as the first) and records a crash-loop event with
// what the dead masters' crash reports say they were running.
const (
	crashLoopDeaths = 3
	crashLoopWindow = 10 * time.Minute
	crashLogTail    = 256 << 10 // bytes of redis.log read per death
)

// masterDeath is one death of a shard's master.
type masterDeath struct {
	Instance string    `json:"instance"`
	At       time.Time `json:"at"`
	Command  string    `json:"command,omitempty"` // from the crash report, if any
	Key      string    `json:"key,omitempty"`
}

// CrashReport is what a Redis crash report (the "REDIS BUG REPORT" Redis
// writes to its log when it crashes) says the server was running.
type CrashReport struct {
	Signal  string   // "crashed by signal: 11, si_code: 2", or an assertion
	Argv    []string // the command of the client being served
	Key     string   // its first argument, when Redis found it as a key
	Command string   // Argv joined, quoted where needed, at most 200 bytes
}

var (
	reportStart = []byte("=== REDIS BUG REPORT START")
	readyLine   = []byte("Ready to accept connections")
	argvLine    = regexp.MustCompile(`(?m)^argv\[\d+\]: '(.*)'$`)
	keyLine     = regexp.MustCompile(`(?m)key '(.*)' found in DB containing the following object`)
	crashLine   = regexp.MustCompile(`(?m)(crashed by signal: .*|ASSERTION FAILED.*|Guru Meditation: .*)$`)
)

// ParseCrashReport finds the crash report of the latest run in the end of a
// redis.log: the last report, unless the server started again after it
// (then the last run did not crash, or did not say so). It is pure.
func ParseCrashReport(log []byte) (CrashReport, bool) {
	i := bytes.LastIndex(log, reportStart)
	if i < 0 || bytes.LastIndex(log, readyLine) > i {
		return CrashReport{}, false
	}
	rep := log[i:]
	var r CrashReport
	if m := crashLine.FindSubmatch(rep); m != nil {
		r.Signal = strings.TrimSpace(string(m[1]))
	}
	if j := bytes.Index(rep, []byte("------ CURRENT CLIENT INFO ------")); j >= 0 {
		cur := rep[j:]
		if k := bytes.Index(cur[1:], []byte("\n------ ")); k >= 0 {
			cur = cur[:k+1]
		}
		for _, m := range argvLine.FindAllSubmatch(cur, -1) {
			r.Argv = append(r.Argv, strings.Trim(string(m[1]), `"`))
		}
		if m := keyLine.FindSubmatch(cur); m != nil {
			r.Key = string(m[1])
		}
	}
	r.Command = strings.Join(r.Argv, " ")
	if len(r.Command) > 200 {
		r.Command = r.Command[:200] + "…"
	}
	return r, true
}

// noteMasterDeath counts a death of a shard's master and records a
// crash-loop event when the shard is in one: at the crashLoopDeaths-th
// death within crashLoopWindow, then at most once per window.
func (c *Controller) noteMasterDeath(ctx context.Context, cl store.Cluster, in store.Instance, at time.Time) {
	d := masterDeath{Instance: in.Name, At: at}
	if rep, ok := c.crashReport(ctx, in); ok {
		d.Command, d.Key = rep.Command, rep.Key
	}
	name := spec.MasterName(cl.Name, in.Shard)
	var recent []masterDeath
	c.deaths.with(func(deaths map[string][]masterDeath) {
		for _, old := range deaths[name] {
			if at.Sub(old.At) < crashLoopWindow {
				recent = append(recent, old)
			}
		}
		recent = append(recent, d)
		deaths[name] = recent
	})
	var emit bool
	c.crashLoops.with(func(last map[string]time.Time) {
		emit = len(recent) >= crashLoopDeaths && at.Sub(last[name]) >= crashLoopWindow
		if emit {
			last[name] = at
		}
	})
	if !emit {
		return
	}
	details := map[string]any{"deaths": recent, "windowMs": crashLoopWindow.Milliseconds()}
	msg := fmt.Sprintf("%s is in a crash loop: its master died %d times within %s", name, len(recent), crashLoopWindow)
	// What the crashes have in common: the command (and key) the most
	// reports name.
	counts := map[string]int{}
	var cmd, key string
	for _, x := range recent {
		if x.Command == "" {
			continue
		}
		counts[x.Command]++
		if counts[x.Command] > counts[cmd] {
			cmd, key = x.Command, x.Key
		}
	}
	if cmd != "" {
		details["command"] = cmd
		msg += fmt.Sprintf("; %d of them crashed running %q", counts[cmd], cmd)
		if key != "" {
			details["key"] = key
			msg += fmt.Sprintf(" (key %q)", key)
		}
	}
	c.event(ctx, cl.Name, &in.Shard, "crash-loop", msg, details)
	c.log.Warn("crash loop", "cluster", cl.Name, "shard", name, "deaths", len(recent), "command", cmd)
}

// crashReport reads the crash report of an instance's last run, when its
// platform shows logs.
func (c *Controller) crashReport(ctx context.Context, in store.Instance) (CrashReport, bool) {
	p := c.platform
	if g, ok := p.(gatedPlatform); ok {
		p = g.Platform // reading a log acts on nothing
	}
	lr, ok := p.(platform.LogReader)
	if !ok {
		return CrashReport{}, false
	}
	b, err := lr.LogTail(ctx, id(in), crashLogTail)
	if err != nil {
		return CrashReport{}, false
	}
	return ParseCrashReport(b)
}
