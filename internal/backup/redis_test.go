package backup

import (
	"context"
	"fmt"
	"github.com/redis-manager/redis-manager/internal/testenv"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const testPassword = "pa55-not-in-errors"

// redisServer is a redis-server process started by a test.
type redisServer struct {
	t    testing.TB
	Addr string
	Dir  string
	cmd  *exec.Cmd
}

// startRedis starts redis-server on a free loopback port with its own
// directory and the test password; conf lines are appended to the config.
// When dump is not empty, that file becomes the instance's dump.rdb.
func startRedis(t testing.TB, dump string, conf ...string) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("redis-server is not installed (apt-get install redis-server)")
	}
	dir := t.TempDir()
	if dump != "" {
		if err := os.Rename(dump, filepath.Join(dir, "dump.rdb")); err != nil {
			t.Fatal(err)
		}
	}
	for attempt := 0; ; attempt++ {
		port := testenv.FreePort(t)
		cfg := strings.Join(append([]string{
			"port " + strconv.Itoa(port),
			"bind 127.0.0.1",
			"dir " + dir,
			"dbfilename dump.rdb",
			`save ""`,
			"appendonly no",
			"requirepass " + testPassword,
			"repl-diskless-sync-delay 0",
			"enable-debug-command yes",
			"logfile " + filepath.Join(dir, "redis.log"),
		}, conf...), "\n") + "\n"
		if err := os.WriteFile(filepath.Join(dir, "redis.conf"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("redis-server", filepath.Join(dir, "redis.conf"))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		s := &redisServer{t: t, Addr: fmt.Sprintf("127.0.0.1:%d", port), Dir: dir, cmd: cmd}
		t.Cleanup(s.Kill)
		if err := s.waitReady(); err != nil {
			s.Kill()
			if attempt < 2 && !strings.Contains(err.Error(), "LOADING") {
				continue // another process took the port
			}
			t.Fatalf("redis-server: %v\n%s", err, s.Log())
		}
		return s
	}
}

func (s *redisServer) waitReady() error {
	c := s.Client(0)
	defer c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || s.cmd.ProcessState != nil {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the process by its pid; safe to call twice.
func (s *redisServer) Kill() {
	if s.cmd.Process != nil && s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

// Client is a client of database db; the caller closes it.
func (s *redisServer) Client(db int) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: s.Addr, Password: testPassword, DB: db, Protocol: 2,
		DisableIdentity: true, ReadTimeout: 30 * time.Second, MaxRetries: -1})
}

func (s *redisServer) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

func (s *redisServer) Do(ctx context.Context, args ...any) {
	s.t.Helper()
	c := s.Client(0)
	defer c.Close()
	if err := c.Do(ctx, args...).Err(); err != nil {
		s.t.Fatalf("%v: %v", args, err)
	}
}

// DBSize sums DBSIZE over the databases that hold data.
func (s *redisServer) DBSize(ctx context.Context) int64 {
	s.t.Helper()
	var n int64
	for db := 0; db < 16; db++ {
		c := s.Client(db)
		k, err := c.DBSize(ctx).Result()
		c.Close()
		if err != nil {
			s.t.Fatal(err)
		}
		n += k
	}
	return n
}

// loadData writes n keys of each kind (strings, hashes, lists, sets,
// zsets), a third of them with a TTL, plus values big enough for every
// encoding Redis 7.0 saves (listpacks, hashtables, quicklists, intsets,
// skiplists, integers, LZF-compressed strings), a stream with a consumer
// group, a function library, and keys in database 1.
func loadData(t testing.TB, s *redisServer, n int) {
	t.Helper()
	ctx := context.Background()
	c := s.Client(0)
	defer c.Close()
	for lo := 0; lo < n; lo += 500 {
		p := c.Pipeline()
		for i := lo; i < min(lo+500, n); i++ {
			p.Set(ctx, fmt.Sprintf("str:%d", i), fmt.Sprintf("value-%d", i), 0)
			p.HSet(ctx, fmt.Sprintf("hash:%d", i), "f1", i, "f2", "v2", "f3", strings.Repeat("x", i%50))
			p.RPush(ctx, fmt.Sprintf("list:%d", i), "a", "b", i)
			p.SAdd(ctx, fmt.Sprintf("set:%d", i), "m1", "m2", fmt.Sprint("m", i))
			p.ZAdd(ctx, fmt.Sprintf("zset:%d", i), redis.Z{Score: float64(i), Member: "a"}, redis.Z{Score: -1.5, Member: "b"})
			if i%3 == 0 {
				for _, k := range []string{"str", "hash", "list", "set", "zset"} {
					p.Expire(ctx, fmt.Sprintf("%s:%d", k, i), time.Duration(3600+i)*time.Second)
				}
			}
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p := c.Pipeline()
	p.Set(ctx, "int", 12345, 0)
	p.Set(ctx, "negint", -7, 0)
	p.Set(ctx, "compressible", strings.Repeat("abcdefgh", 1000), 0)
	for i := 0; i < 1000; i++ {
		p.HSet(ctx, "bighash", fmt.Sprint("field", i), strings.Repeat("v", i%100))
		p.RPush(ctx, "biglist", strings.Repeat("e", i%200))
		p.SAdd(ctx, "bigset", fmt.Sprint("member", i))
		p.SAdd(ctx, "intset", i)
		p.ZAdd(ctx, "bigzset", redis.Z{Score: float64(i) / 3, Member: fmt.Sprint("m", i)})
		p.XAdd(ctx, &redis.XAddArgs{Stream: "stream", Values: []any{"n", i}})
	}
	p.ZAdd(ctx, "infzset", redis.Z{Score: math.Inf(1), Member: "top"})
	p.XGroupCreate(ctx, "stream", "group", "0")
	p.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "group", Consumer: "alice", Streams: []string{"stream", ">"}, Count: 10})
	p.Do(ctx, "FUNCTION", "LOAD", "REPLACE", "#!lua name=testlib\nredis.register_function('hello', function() return 'hi' end)")
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	c1 := s.Client(1)
	defer c1.Close()
	for i := 0; i < 100; i++ {
		if err := c1.Set(ctx, fmt.Sprint("db1:", i), i, time.Hour).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshotData renders every key of every database with its value and its
// absolute expiry, for comparing two instances. Values are compared as
// data, not as DUMP payloads: a hashtable's iteration order may change
// across a reload.
func snapshotData(t testing.TB, s *redisServer) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for db := 0; db < 16; db++ {
		c := s.Client(db)
		var keys []string
		iter := c.Scan(ctx, 0, "*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
		for lo := 0; lo < len(keys); lo += 500 {
			batch := keys[lo:min(lo+500, len(keys))]
			types := make([]*redis.StatusCmd, len(batch))
			exp := make([]*redis.DurationCmd, len(batch))
			p := c.Pipeline()
			for i, k := range batch {
				types[i] = p.Type(ctx, k)
				exp[i] = p.PExpireTime(ctx, k)
			}
			if _, err := p.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			vals := make([]redis.Cmder, len(batch))
			p = c.Pipeline()
			for i, k := range batch {
				switch types[i].Val() {
				case "string":
					vals[i] = p.Get(ctx, k)
				case "hash":
					vals[i] = p.HGetAll(ctx, k)
				case "list":
					vals[i] = p.LRange(ctx, k, 0, -1)
				case "set":
					vals[i] = p.SMembers(ctx, k)
				case "zset":
					vals[i] = p.ZRangeWithScores(ctx, k, 0, -1)
				case "stream":
					vals[i] = p.XRange(ctx, k, "-", "+")
				default:
					t.Fatalf("key %q of type %q", k, types[i].Val())
				}
			}
			if _, err := p.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			for i, k := range batch {
				v := canonical(vals[i])
				if types[i].Val() == "stream" {
					g, err := c.XInfoGroups(ctx, k).Result()
					if err != nil {
						t.Fatal(err)
					}
					v += fmt.Sprintf(" groups=%+v", g)
				}
				out[fmt.Sprintf("%d/%s", db, k)] = fmt.Sprintf("%s %s expire=%d", types[i].Val(), v, exp[i].Val())
			}
		}
		c.Close()
	}
	return out
}

func canonical(c redis.Cmder) string {
	switch c := c.(type) {
	case *redis.MapStringStringCmd:
		m := c.Val()
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "%q=%q,", k, m[k])
		}
		return b.String()
	case *redis.StringSliceCmd:
		v := c.Val()
		if c.Args()[0] == "smembers" {
			v = append([]string(nil), v...)
			sort.Strings(v)
		}
		return fmt.Sprintf("%q", v)
	default:
		return fmt.Sprintf("%v", c)
	}
}
