package alerts

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis-manager/redis-manager/api"
	"github.com/redis-manager/redis-manager/internal/store"
	"github.com/redis-manager/redis-manager/internal/store/storetest"
)

// TestOutboxNextManagerDelivers: on a real store, manager A queues a
// notification while the receiver fails; A stops after its first failed
// attempt with the notification waiting for its retry. Manager B (another
// notifier on the same store) delivers it once the receiver answers: the
// receiver sees every attempt with one delivery id and accepts it once;
// one delivery is recorded, OK, counting A's attempt; the outbox is empty.
func TestOutboxNextManagerDelivers(t *testing.T) {
	st := storetest.SQLite(t, t.TempDir())
	var failing atomic.Bool
	failing.Store(true)
	var mu sync.Mutex
	var ids []string
	accepted := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get(api.SignatureHeader) != Sign("s3cret", body) {
			t.Errorf("bad signature")
		}
		id := r.Header.Get(api.DeliveryHeader)
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, id)
		if failing.Load() {
			w.WriteHeader(500)
			return
		}
		accepted[id]++
	}))
	defer srv.Close()
	if err := st.PutWebhooks(t.Context(), []store.Webhook{{Name: "ops", URL: srv.URL, Secret: "s3cret", Format: api.WebhookJSON}}); err != nil {
		t.Fatal(err)
	}
	cfg := NotifierConfig{Backoff: 2 * time.Second, Poll: 50 * time.Millisecond, AttemptTimeout: 2 * time.Second}
	log := slog.New(slog.DiscardHandler)

	cfg.ID = "a"
	a := NewNotifier(cfg, st, log)
	actx, stopA := context.WithCancel(context.Background())
	aDone := make(chan struct{})
	go func() { a.Run(actx); close(aDone) }()
	a.Enqueue(api.Alert{Rule: "instance-down", Cluster: "c", Instance: "c-0-1", State: api.AlertFiring, Since: time.Now()})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		mu.Lock()
		n := len(ids)
		mu.Unlock()
		if n >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("manager A never attempted the delivery")
		}
	}
	stopA()
	<-aDone
	if ds, _ := st.ListDeliveries(t.Context(), 0); len(ds) != 0 {
		t.Fatalf("a delivery recorded while it was still to be retried: %+v", ds)
	}

	failing.Store(false)
	cfg.ID = "b"
	b := NewNotifier(cfg, st, log)
	bctx, stopB := context.WithCancel(context.Background())
	defer stopB()
	go b.Run(bctx)
	var ds []api.Delivery
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ds, _ = st.ListDeliveries(t.Context(), 0); len(ds) > 0 {
			break
		}
	}
	time.Sleep(500 * time.Millisecond) // anything extra would arrive by now
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 2 || ids[0] == "" || ids[0] != ids[1] {
		t.Fatalf("receiver saw delivery ids %q: want A's failed attempt and B's, one id", ids)
	}
	if len(accepted) != 1 || accepted[ids[0]] != 1 {
		t.Errorf("accepted %v: want the one id once", accepted)
	}
	if len(ds) != 1 || !ds[0].OK || ds[0].Attempts != 2 || ds[0].StatusCode != 200 || ds[0].Rule != "instance-down" {
		t.Errorf("deliveries %+v: want one, OK after 2 attempts", ds)
	}
	if left, err := st.ClaimNotifications(t.Context(), "check", time.Now().Add(time.Hour), time.Now().Add(2*time.Hour), 10); err != nil || len(left) != 0 {
		t.Errorf("outbox after delivery: %v %+v", err, left)
	}
}
