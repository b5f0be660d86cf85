package redisclient

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/internal/testenv"
)

// TestRefusedDialsDoNotPoisonTheClient: an instance is dialled before it
// starts (a create polls its new instances at once). go-redis opens a
// breaker after PoolSize failed dials and answers "connection refused"
// without dialling for up to a second; the pool must hand out a client that
// dials the instance as soon as it is up.
func TestRefusedDialsDoNotPoisonTheClient(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	p := NewPool()
	defer p.Close()
	port := testenv.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	ctx := context.Background()
	for i := 0; i < 3*poolSize; i++ {
		if err := p.Redis(addr, "").Ping(ctx).Err(); err == nil {
			t.Fatal("PING answered with nothing listening")
		}
	}
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// Up as soon as it accepts a plain TCP connection.
	deadline := time.Now().Add(5 * time.Second)
	for !listening(addr) {
		if time.Now().After(deadline) {
			t.Fatal("redis-server did not start")
		}
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	if err := p.Redis(addr, "").Ping(ctx).Err(); err != nil {
		t.Fatalf("first PING after the instance is up: %v (the client still answers its old dial error)", err)
	}
	t.Logf("first PING after start took %v", time.Since(start))

	// The same for a Sentinel client.
	sport := testenv.FreePort(t)
	saddr := "127.0.0.1:" + strconv.Itoa(sport)
	for i := 0; i < 3*poolSize; i++ {
		_ = p.Sentinel(saddr, "").Ping(ctx).Err()
	}
	scmd := exec.Command("redis-server", "--port", strconv.Itoa(sport), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := scmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = scmd.Process.Kill(); _ = scmd.Wait() }()
	for !listening(saddr) {
		time.Sleep(time.Millisecond)
	}
	if err := p.Sentinel(saddr, "").Ping(ctx).Err(); err != nil {
		t.Fatalf("first PING of the sentinel client after start: %v", err)
	}
}

func listening(addr string) bool {
	c, err := (&netDialer).Dial("tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// TestSubscriptionOutlivesRetirement: a subscription keeps working while
// the pooled client of the same address is retired.
func TestSubscriptionOutlivesRetirement(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	p := NewPool()
	defer p.Close()
	port := testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	for !listening(addr) {
		time.Sleep(time.Millisecond)
	}
	ctx := context.Background()
	sub := p.PSubscribe(ctx, addr, "", "*")
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription confirmation
		t.Fatal(err)
	}
	p.Close() // every pooled client closed
	if err := redisPublish(addr); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.ReceiveMessage(ctx)
	if err != nil || msg.Payload != "hello" {
		t.Fatalf("message after the pool closed: %v %v", msg, err)
	}
}

var netDialer = net.Dialer{Timeout: 100 * time.Millisecond}

func redisPublish(addr string) error {
	c := NewPool()
	defer c.Close()
	return c.Redis(addr, "").Publish(context.Background(), "ch", "hello").Err()
}

// BenchmarkParseInfo parses the INFO the observe loop reads from every
// instance every round (testdata/info.txt: redis-server 7.0, the loop's
// nine sections).
func BenchmarkParseInfo(b *testing.B) {
	text, err := os.ReadFile("testdata/info.txt")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if info := ParseInfo(string(text)); info["redis_version"] == "" {
			b.Fatal("no redis_version")
		}
	}
}
