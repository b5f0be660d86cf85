package server

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestCompress(t *testing.T) {
	big := strings.Repeat(`{"v": null}, `, 2000)
	h := compress(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(201)
			io.WriteString(w, big[:len(big)/2])
			io.WriteString(w, big[len(big)/2:])
		case "/small":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"ok": true}`)
		case "/png":
			w.Header().Set("Content-Type", "image/png")
			w.Write(bytes.Repeat([]byte{1}, 4096))
		case "/stream":
			// As the event stream: its type, a flush after each event.
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "retry: 2000\n\n")
			w.(http.Flusher).Flush()
			io.WriteString(w, big)
		case "/encoded":
			// As promhttp: a handler that compresses itself.
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			io.WriteString(zw, big)
			zw.Close()
		case "/empty":
			w.WriteHeader(204)
		}
	}))
	get := func(path, accept string) *http.Response {
		req := httptest.NewRequest("GET", path, nil)
		if accept != "" {
			req.Header.Set("Accept-Encoding", accept)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Result()
	}
	res := get("/big", "gzip, deflate")
	if res.StatusCode != 201 || res.Header.Get("Content-Encoding") != "gzip" || res.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("big JSON: status %d, headers %v", res.StatusCode, res.Header)
	}
	raw, _ := io.ReadAll(res.Body)
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if string(plain) != big {
		t.Fatalf("big JSON decompressed to %d bytes, want %d", len(plain), len(big))
	}
	if len(raw)*10 > len(big) {
		t.Fatalf("big JSON compressed to %d of %d bytes", len(raw), len(big))
	}
	for _, c := range []struct{ path, accept string }{
		{"/big", ""}, {"/big", "gzip;q=0"}, {"/big", "br"}, {"/small", "gzip"}, {"/png", "gzip"}, {"/stream", "gzip"},
	} {
		res := get(c.path, c.accept)
		body, _ := io.ReadAll(res.Body)
		if res.Header.Get("Content-Encoding") != "" {
			t.Errorf("%s with Accept-Encoding %q: compressed", c.path, c.accept)
		}
		if c.path == "/big" && string(body) != big || c.path == "/small" && string(body) != `{"ok": true}` ||
			c.path == "/stream" && string(body) != "retry: 2000\n\n"+big {
			t.Errorf("%s with Accept-Encoding %q: body changed", c.path, c.accept)
		}
	}
	// A body the handler encoded itself is sent as it is, not twice.
	res = get("/encoded", "gzip")
	raw, _ = io.ReadAll(res.Body)
	if zr, err := gzip.NewReader(bytes.NewReader(raw)); err != nil {
		t.Errorf("self-encoded answer: %v", err)
	} else if plain, _ := io.ReadAll(zr); string(plain) != big {
		t.Errorf("self-encoded answer decodes to %d bytes, want %d (compressed twice?)", len(plain), len(big))
	}
	if res := get("/empty", "gzip"); res.StatusCode != 204 || res.Header.Get("Content-Encoding") != "" {
		t.Errorf("204: status %d, encoding %q", res.StatusCode, res.Header.Get("Content-Encoding"))
	}
}
